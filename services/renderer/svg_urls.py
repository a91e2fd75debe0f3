"""After svg-hush: no URL in an SVG may point anywhere but into the SVG itself.

svg-hush removes scripts and external hosts, but it keeps same-origin URLs:
``style="fill:url(/p.svg#p)"``, ``background:url(/bg.png)``, ``<image href="/x.png">``,
``<use href="/x.svg#a">``; and an absolute ``url(http://host/x)`` becomes ``url(/x)``.
Opened as a document (the viewer serves SVGs for figures too large for its
WebSocket; a downloaded file; an SVG inlined into someone's page), those load
from wherever the SVG is served: a request on the user's behalf, a beacon.
plotly.js itself needs only references into the same document: ``url(#clip…)``
for clip paths, ``url(#g…)`` for gradients, ``href="#…"`` (MathJax glyphs), and
``data:`` images (heatmaps, layout images, scattergl), which svg-hush checked.

So this pass goes over svg-hush's output (well-formed XML; anything it cannot
read is refused) and, in ``style`` attributes, the CSS-valued presentation
attributes (``fill``, ``clip-path``, ``filter``, ...) and ``<style>`` text,
replaces every URL reference that is not a local fragment with ``none``:
``url(...)`` in every spelling CSS allows (escapes such as ``u\\72l(``,
comments, any case, quoted or not, unterminated), ``src()``, ``image-set()``,
``image()``, ``cross-fade()``, ``element()``, ``paint()``, ``attr()``; an ``@import``
is renamed to an at-rule browsers ignore. ``href`` attributes keep only ``#…`` and
the ``data:`` images svg-hush allowed. The CSS is read with the tokenizer of
CSS Syntax Level 3 (escapes, comments, strings, url tokens), so what is checked
is what a browser would see. Values with nothing to change are left byte for
byte as they were.
"""

import re
from dataclasses import dataclass

# Properties whose values may hold a <url> or <image>, as presentation attributes of SVG elements.
URL_ATTRIBUTES = frozenset(
    {
        "style",
        "fill",
        "stroke",
        "clip-path",
        "mask",
        "filter",
        "marker",
        "marker-start",
        "marker-mid",
        "marker-end",
        "cursor",
        "color-profile",
        "background",
        "background-image",
        "mask-image",
        "list-style",
        "list-style-image",
        "border-image",
        "border-image-source",
        "content",
        "shape-outside",
        # what an animation would set (svg-hush drops attributeName, so they are inert; cleaned all the same)
        "to",
        "from",
        "by",
        "values",
    }
)
# CSS functions that take a URL or an image (replaced unless a plain url(#fragment)).
URL_FUNCTIONS = frozenset({"url", "src"})
IMAGE_FUNCTIONS = frozenset(
    {
        "image",
        "image-set",
        "-webkit-image-set",
        "cross-fade",
        "-webkit-cross-fade",
        "element",
        "-moz-element",
        "paint",
        "attr",
    }
)
# Without a backslash (an escape), a CSS text naming none of these cannot hold a URL: skipped fast.
NEEDLES = ("url", "src", "image", "cross-fade", "element", "paint", "attr", "import")
SAFE_DATA_URL = re.compile(r"data:image/(?:png|jpeg|gif|webp)[;,]", re.IGNORECASE)
REMOVED_AT_RULE = "@plotfarm-removed"


class UnreadableSvg(ValueError):
    """svg-hush's output was not the well-formed XML this pass reads: refuse it rather than guess."""


# ---- CSS (CSS Syntax Level 3, section 4: tokenization) -----------------------------------


@dataclass
class Token:
    kind: str  # ident, function, at, url, bad-url, string, bad-string, ws, comment, open, close, other
    start: int
    end: int
    value: str = ""  # decoded: an ident's or function's name, a string's or url's text


def _is_name_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_") or (not char.isascii() and char != "")


def _is_name(char: str) -> bool:
    return _is_name_start(char) or (char.isascii() and (char.isdigit() or char == "-"))


def _valid_escape(css: str, i: int) -> bool:
    return i < len(css) and css[i] == "\\" and (i + 1 >= len(css) or css[i + 1] != "\n")


def _starts_ident(css: str, i: int) -> bool:
    first = css[i] if i < len(css) else ""
    if first == "-":
        second = css[i + 1] if i + 1 < len(css) else ""
        return _is_name_start(second) or second == "-" or _valid_escape(css, i + 1)
    return _is_name_start(first) or _valid_escape(css, i)


def _escape(css: str, i: int) -> tuple[str, int]:
    """The character an escape at ``css[i] == "\\"`` stands for, and where it ends."""
    i += 1
    if i >= len(css):
        return "\ufffd", i
    hex_digits = re.match(r"[0-9a-fA-F]{1,6}", css[i : i + 6])
    if hex_digits:
        i += len(hex_digits.group())
        if i < len(css) and css[i] in " \t\n":
            i += 1
        code = int(hex_digits.group(), 16)
        return (chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"), i
    return css[i], i + 1


def _name(css: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(css):
        if _is_name(css[i]):
            out.append(css[i])
            i += 1
        elif _valid_escape(css, i):
            char, i = _escape(css, i)
            out.append(char)
        else:
            break
    return "".join(out), i


def _string(css: str, i: int) -> tuple[str, str, int]:
    quote, i, out = css[i], i + 1, []
    while i < len(css):
        char = css[i]
        if char == quote:
            return "string", "".join(out), i + 1
        if char == "\n":
            return "bad-string", "".join(out), i
        if char == "\\":
            if i + 1 >= len(css):
                i += 1
            elif css[i + 1] == "\n":
                i += 2
            else:
                escaped, i = _escape(css, i)
                out.append(escaped)
            continue
        out.append(char)
        i += 1
    return "string", "".join(out), i


def _url(css: str, i: int) -> tuple[str, str, int]:
    """A url token's rest, from just after ``url(`` and its whitespace."""
    out = []
    while i < len(css):
        char = css[i]
        if char == ")":
            return "url", "".join(out), i + 1
        if char in " \t\n":
            while i < len(css) and css[i] in " \t\n":
                i += 1
            if i >= len(css) or css[i] == ")":
                return "url", "".join(out), min(i + 1, len(css))
            return "bad-url", "", _bad_url_rest(css, i)
        if char in "\"'(" or (ord(char) < 0x20 and char != "\t") or char == "\x7f":
            return "bad-url", "", _bad_url_rest(css, i)
        if char == "\\":
            if not _valid_escape(css, i):
                return "bad-url", "", _bad_url_rest(css, i)
            escaped, i = _escape(css, i)
            out.append(escaped)
            continue
        out.append(char)
        i += 1
    return "url", "".join(out), i


def _bad_url_rest(css: str, i: int) -> int:
    while i < len(css):
        if css[i] == ")":
            return i + 1
        if _valid_escape(css, i):
            _, i = _escape(css, i)
        else:
            i += 1
    return i


def preprocess(css: str) -> str:
    """CSS Syntax 3.3: newlines to LF, NUL to U+FFFD (before anything is read)."""
    return css.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").replace("\0", "\ufffd")


def tokenize(css: str) -> list[Token]:
    """The tokens of (preprocessed) CSS, with what the checks need; everything else is "other"."""
    tokens, i = [], 0
    while i < len(css):
        char, start = css[i], i
        if css.startswith("/*", i):
            end = css.find("*/", i + 2)
            i = len(css) if end < 0 else end + 2
            tokens.append(Token("comment", start, i))
        elif char in " \t\n":
            while i < len(css) and css[i] in " \t\n":
                i += 1
            tokens.append(Token("ws", start, i))
        elif char in "\"'":
            kind, value, i = _string(css, i)
            tokens.append(Token(kind, start, i, value))
        elif char == "@" and _starts_ident(css, i + 1):
            name, i = _name(css, i + 1)
            tokens.append(Token("at", start, i, name.lower()))
        elif _starts_ident(css, i):
            name, i = _name(css, i)
            if i < len(css) and css[i] == "(":
                i += 1
                if name.lower() == "url":
                    j = i
                    while j < len(css) and css[j] in " \t\n":
                        j += 1
                    if j < len(css) and css[j] in "\"'":
                        tokens.append(Token("function", start, i, "url"))
                    else:
                        kind, value, i = _url(css, j)
                        tokens.append(Token(kind, start, i, value))
                else:
                    tokens.append(Token("function", start, i, name.lower()))
            else:
                tokens.append(Token("ident", start, i, name.lower()))
        elif char in "([{":
            tokens.append(Token("open", start, i + 1, char))
            i += 1
        elif char in ")]}":
            tokens.append(Token("close", start, i + 1, char))
            i += 1
        elif char == "\\":  # not a valid escape (a backslash before a newline): a delimiter
            tokens.append(Token("other", start, i + 1, char))
            i += 1
        else:
            tokens.append(Token("other", start, i + 1, char))
            i += 1
    return tokens


CLOSERS = {"(": ")", "[": "]", "{": "}"}


def _function_end(tokens: list[Token], at: int) -> int:
    """The index just past the ``)`` that closes the function token at ``tokens[at]`` (nested blocks too)."""
    expected = [")"]
    i = at + 1
    while i < len(tokens) and expected:
        token = tokens[i]
        if token.kind == "function":
            expected.append(")")
        elif token.kind == "open":
            expected.append(CLOSERS[token.value])
        elif token.kind == "close" and token.value == expected[-1]:
            expected.pop()
        i += 1
    return i


def _local(url: str) -> bool:
    return url.startswith("#")


def clean_css(css: str) -> str:
    """CSS (a stylesheet, a declaration list or one value) with every non-local URL reference made ``none``."""
    if "\\" not in css and not any(needle in css.lower() for needle in NEEDLES):
        return css
    text = preprocess(css)
    tokens = tokenize(text)
    out, last, changed, i = [], 0, False, 0
    while i < len(tokens):
        token = tokens[i]
        replace_to = None  # index past the tokens to replace with "none"
        if token.kind in ("url", "bad-url"):
            if token.kind == "bad-url" or not _local(token.value):
                replace_to = i + 1
        elif token.kind == "function" and (token.value in URL_FUNCTIONS or token.value in IMAGE_FUNCTIONS):
            end = _function_end(tokens, i)
            inside = [t for t in tokens[i + 1 : end] if t.kind not in ("ws", "comment")]
            plain = (
                token.value in URL_FUNCTIONS
                and len(inside) == 2
                and inside[0].kind == "string"
                and inside[1].kind == "close"
            )
            if not (plain and _local(inside[0].value)):
                replace_to = end
        elif token.kind == "at" and token.value == "import":
            out.append(text[last : token.start] + REMOVED_AT_RULE)
            last, changed = token.end, True
        if replace_to is not None:
            # A space either side: "none" never joins the tokens around it into something else.
            out.append(text[last : token.start] + " none ")
            last, changed = tokens[replace_to - 1].end, True
            i = replace_to
            continue
        i += 1
    if not changed:
        return css
    out.append(text[last:])
    return "".join(out)


# ---- XML (svg-hush's output) ------------------------------------------------------------

MARKUP = re.compile(
    r"""
    (?P<comment><!--.*?-->)
  | (?P<cdata><!\[CDATA\[(?P<cdata_text>.*?)\]\]>)
  | (?P<pi><\?.*?\?>)
  | (?P<end></[^\s<>]+\s*>)
  | (?P<start><(?P<name>[^\s/<>!?]+)(?P<attrs>(?:\s+[^\s=/<>]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(?P<empty>/?)>)
  | (?P<text>[^<]+)
    """,
    re.DOTALL | re.VERBOSE,
)
ATTRIBUTE = re.compile(r"""(\s+)([^\s=/<>]+)(\s*=\s*)(?:"([^"<]*)"|'([^'<]*)')""")
REFERENCE = re.compile(r"&(?:#x([0-9a-fA-F]{1,6})|#([0-9]{1,7})|(amp|lt|gt|quot|apos));")
NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _unescape(text: str, *, attribute: bool) -> str:
    """XML's reading of character data: references decoded; in attributes, literal whitespace is a space."""
    if attribute:
        text = text.replace("\r\n", " ").translate({ord("\t"): " ", ord("\n"): " ", ord("\r"): " "})
    if "&" not in text:
        return text

    def decode(match: re.Match) -> str:
        hex_code, decimal, name = match.groups()
        if name:
            return NAMED[name]
        code = int(hex_code, 16) if hex_code else int(decimal)
        if not (0 < code <= 0x10FFFF) or 0xD800 <= code <= 0xDFFF:
            raise UnreadableSvg(f"a character reference to {code:#x}")
        return chr(code)

    decoded = REFERENCE.sub(decode, text)
    if "&" in REFERENCE.sub("", text):
        raise UnreadableSvg("an entity reference other than XML's own")
    return decoded


def _escape_attribute(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _local_name(name: str) -> str:
    return name.rpartition(":")[2].lower()


def _clean_href(value: str) -> str | None:
    """An href kept as it is (a fragment, an image svg-hush allowed), or None: drop the attribute."""
    stripped = value.strip(" \t\n\r\f")
    return value if stripped.startswith("#") or SAFE_DATA_URL.match(stripped) else None


def _clean_start_tag(match: re.Match) -> str:
    tag = match.group("start")
    attrs = match.group("attrs")
    if not attrs:
        return tag
    if "&" in attrs and "&" in REFERENCE.sub("", attrs):
        raise UnreadableSvg("an entity reference other than XML's own")
    lowered = attrs.lower()
    if "href" not in lowered and "\\" not in attrs and "&#" not in attrs and not any(n in lowered for n in NEEDLES):
        return tag  # nothing that could hold a URL: plotly's paths and texts, unchanged and fast
    pieces, changed = [], False
    for attribute in ATTRIBUTE.finditer(attrs):
        space, name, equals, double, single = attribute.groups()
        raw = double if double is not None else single
        local = _local_name(name)
        if local == "href":
            kept = _clean_href(_unescape(raw, attribute=True))
            if kept is None:
                changed = True
                continue
        elif local in URL_ATTRIBUTES:
            value = _unescape(raw, attribute=True)
            cleaned = clean_css(value)
            if cleaned != value:
                pieces.append(f'{space}{name}{equals}"{_escape_attribute(cleaned)}"')
                changed = True
                continue
        pieces.append(attribute.group(0))
    if not changed:
        return tag
    return f"<{match.group('name')}{''.join(pieces)}{' /' if match.group('empty') else ''}>"


def clean_svg_urls(svg: str) -> str:
    """``svg`` (svg-hush's output) with only local URL references left (see the module)."""
    out, i, style_depth = [], 0, 0
    while i < len(svg):
        match = MARKUP.match(svg, i)
        if match is None:
            raise UnreadableSvg(f"unexpected markup at character {i}")
        i = match.end()
        kind = match.lastgroup
        if kind == "start":
            out.append(_clean_start_tag(match))
            if _local_name(match.group("name")) == "style" and not match.group("empty"):
                style_depth += 1
        elif kind == "end":
            out.append(match.group(0))
            if style_depth and _local_name(match.group(0)[2:-1].strip()) == "style":
                style_depth -= 1
        elif kind in ("text", "cdata") and style_depth:
            raw = match.group("cdata_text") if kind == "cdata" else match.group("text")
            css = raw if kind == "cdata" else _unescape(raw, attribute=False)
            cleaned = clean_css(css)
            if cleaned == css:
                out.append(match.group(0))
            elif kind == "cdata" and "]]>" not in cleaned:
                out.append(f"<![CDATA[{cleaned}]]>")
            else:
                out.append(_escape_text(cleaned))
        else:
            out.append(match.group(0))
    return "".join(out)
