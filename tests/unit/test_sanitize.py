"""SVG sanitising keeps plotly's drawing and drops anything active."""

from services.renderer.sanitize import sanitize_svg

EVIL = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10" onload="alert(1)">
<script>alert(2)</script><a xlink:href="javascript:alert(3)"><text onmouseover="alert(7)">title</text></a>
<foreignObject><div xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="alert(4)"/></div></foreignObject>
<image href="https://evil.example/beacon.png"/><image xlink:href="data:image/png;base64,iVBORw0KGgo="/>
<image href="data:text/html;base64,PHNjcmlwdD5hbGVydCg1KTwvc2NyaXB0Pg=="/>
<text>&lt;script&gt;alert(6)&lt;/script&gt;</text></svg>"""


def test_active_content_is_removed():
    clean = sanitize_svg(EVIL)
    lowered = clean.lower()
    for bad in (
        "<script",
        "onload",
        "onerror",
        "onmouseover",
        "javascript:",
        "foreignobject",
        "evil.example",
        "text/html",
    ):
        assert bad not in lowered, (bad, clean)


def test_text_and_data_images_survive():
    clean = sanitize_svg(EVIL)
    assert "title" in clean
    assert "&lt;script&gt;" in clean  # escaped text stays text
    assert "data:image/png;base64" in clean
    assert clean.startswith("<svg")


def test_plotly_markup_survives():
    svg = (
        '<svg class="main-svg" xmlns="http://www.w3.org/2000/svg" width="700" height="450" viewBox="0 0 700 450">'
        '<defs><clipPath id="c1"><rect width="5" height="5"/></clipPath></defs>'
        '<g clip-path="url(#c1)"><path d="M0,0L5,5" style="stroke: rgb(99, 110, 250);"/></g>'
        '<text class="gtitle" x="35" y="50">a<tspan style="font-weight:bold">b</tspan>c</text></svg>'
    )
    clean = sanitize_svg(svg)
    for kept in (
        'class="main-svg"',
        'viewBox="0 0 700 450"',
        'clip-path="url(#c1)"',
        "M0,0L5,5",
        "a<tspan",
        "</tspan>c",
    ):
        assert kept in clean, (kept, clean)


# ---- URLs: only references into the SVG itself survive ------------------------------------

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SVG_OPEN = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
PLOTLY_SVG = (Path(__file__).parent / "svg" / "plotly_heatmap_colorbar.svg").read_text()

# Each must leave no way to fetch anything: no URL but a #fragment in any CSS the SVG carries.
HOSTILE_STYLES = [
    "fill:url(/p.svg#p)",
    "background:url(/bg.png)",
    "fill:url(http://evil.example/x)",
    "fill:url('//evil.example/x')",
    'fill:url("/x")',
    "fill:URL(/x)",
    "fill:uRl( /x )",
    "fill:u\\72l(/x)",
    "fill:u\\000072 l(/x)",
    "fill:\\75 \\72 \\6c (/x)",
    "fill:\\55 RL(/x)",
    "fill:url(\\2f x)",
    "fill:url(/x",  # unterminated: still a URL to a browser
    "fill:url( '/x'",
    "fill:url(data:image/svg+xml,%3Csvg%3E)",
    "fill:url(data:text/html,x)",
    "fill:url(javascript:alert(1))",
    "fill:url(/x) red",
    "fill:url(#ok) , url(/x)",
    "cursor:url(/c.cur), auto",
    "background-image:image-set('/x.png' 1x)",
    "background-image:-webkit-image-set(url(/x.png) 1x)",
    "background-image:image('/x.png')",
    "background-image:cross-fade(url(/a.png), url(/b.png), 50%)",
    "--v:url(/x);fill:var(--v)",
    "fill:var(--a, url(/x))",
    "fill:/**/url(/x)",
    "fill:url(/x)/**/",
    "fill:\\\nurl(/x)",
    "mask:url(/m#x)",
    "filter:url('/f.svg#f')",
    "marker-start:url(/m.svg#a)",
    "fill:url(  # /x)",
]


def urls_left(svg: str) -> list[str]:
    """Whatever in the cleaned SVG still names something that is not a #fragment, as a browser would read it."""
    from services.renderer.svg_urls import clean_css, tokenize

    problems = []
    for css in _css_texts(svg):
        tokens = tokenize(css)
        for index, token in enumerate(tokens):
            if token.kind in ("url", "bad-url") and not token.value.startswith("#"):
                problems.append(css)
            if token.kind == "function" and token.value not in ("url", "var", "rgb", "rgba", "calc"):
                problems.append(css)
            if token.kind == "function" and token.value == "url":
                following = [t for t in tokens[index + 1 :] if t.kind not in ("ws", "comment")]
                if not following or following[0].kind != "string" or not following[0].value.startswith("#"):
                    problems.append(css)
            if token.kind == "at" and token.value == "import":
                problems.append(css)
        assert clean_css(css) == css, css  # cleaning is stable
        # and, independently of the tokenizer, a rough reading finds no such reference either
        problems += [css for target in _rough_references(css) if not target.startswith("#")]
    return problems


def _rough_references(css: str) -> list[str]:
    """What follows every url(, src(, image-set(... once comments and escapes are gone, and @import."""
    import re

    text = re.sub(r"/\*.*?(\*/|$)", " ", css, flags=re.S)
    text = re.sub(r"\\([0-9a-fA-F]{1,6})\s?", lambda m: chr(int(m.group(1), 16)), text)
    text = re.sub(r"\\(.)", r"\1", text).lower()
    pattern = r"(?:url|src|image|image-set|cross-fade|element|paint|attr)\s*\(\s*['\"]?\s*([^)'\"]*)"
    found = [match.group(1).strip() for match in re.finditer(pattern, text)]
    return found + (["@import"] if "@import" in text else [])


def _css_texts(svg: str) -> list[str]:
    import html
    import re

    texts = [
        html.unescape(value)
        for _, value in re.findall(
            r'\s(style|fill|stroke|mask|filter|cursor|clip-path|marker-start|marker-end|marker-mid)="([^"]*)"', svg
        )
    ]
    texts += [html.unescape(text) for text in re.findall(r"<style[^>]*>(.*?)</style>", svg, re.S)]
    return texts


@pytest.mark.parametrize("style", HOSTILE_STYLES)
def test_urls_in_style_attributes_are_neutralised(style):
    from xml.sax.saxutils import quoteattr

    svg = f"{SVG_OPEN}<rect width='5' height='5' style={quoteattr(style)}/><text>kept</text></svg>"
    clean = sanitize_svg(svg)
    assert not urls_left(clean), clean
    assert "kept" in clean and "<rect" in clean


@pytest.mark.parametrize("style", HOSTILE_STYLES)
def test_urls_in_style_elements_are_neutralised(style):
    from xml.sax.saxutils import escape

    for body in (escape(f"rect {{ {style} }}"), f"<![CDATA[rect {{ {style} }}]]>"):
        clean = sanitize_svg(f"{SVG_OPEN}<style>{body}</style><rect width='5' height='5'/></svg>")
        assert not urls_left(clean), clean


@pytest.mark.parametrize(
    "stylesheet",
    ['@import "/a.css"; rect{fill:red}', "@import url(/a.css);", "@IMPORT '/a.css';", "@\\69mport '/a.css';"],
)
def test_imports_are_neutralised(stylesheet):
    from xml.sax.saxutils import escape

    clean = sanitize_svg(f"{SVG_OPEN}<style>{escape(stylesheet)}</style></svg>")
    assert not urls_left(clean), clean


@pytest.mark.parametrize("attribute", ["fill", "stroke", "mask", "filter", "cursor", "clip-path", "marker-end"])
def test_urls_in_presentation_attributes_are_neutralised(attribute):
    clean = sanitize_svg(f'{SVG_OPEN}<rect {attribute}="url(/x.svg#a)" width="5" height="5"/></svg>')
    assert not urls_left(clean) and "/x.svg" not in clean, clean


def test_hrefs_keep_only_fragments_and_allowed_images():
    svg = (
        f'{SVG_OPEN}<defs><path id="glyph" d="M0,0L1,1"/></defs><use xlink:href="#glyph"/><use href="/x.svg#a"/>'
        '<image href="/x.png"/><image href="//evil.example/x.png"/><filter><feImage href="/f.png"/></filter>'
        '<image href="data:image/png;base64,iVBORw0KGgo="/></svg>'
    )
    clean = sanitize_svg(svg)
    assert 'href="#glyph"' in clean and "data:image/png;base64,iVBORw0KGgo=" in clean
    for gone in ("/x.svg", "/x.png", "evil.example", "/f.png"):
        assert gone not in clean, (gone, clean)


def test_local_references_survive_in_every_spelling():
    svg = (
        f'{SVG_OPEN}<defs><clipPath id="c1"><rect width="5" height="5"/></clipPath></defs>'
        '<g clip-path="url(#c1)"><rect style="fill: url(#g1); stroke: url(&quot;#g2&quot;)" width="5" height="5"/>'
        "<rect style=\"fill:url('#g3')\"/></g><style>rect { fill: url(#g4) }</style></svg>"
    )
    import html
    import re

    clean = html.unescape(sanitize_svg(svg))
    for name in ("c1", "g1", "g2", "g3", "g4"):
        assert re.search(rf"url\(\s*['\"]?#{name}['\"]?\s*\)", clean), (name, clean)


def test_a_real_plotly_svg_survives_intact():
    """plotly.js's own output (a heatmap with its colorbar: a clip path, a gradient, a data: image), unchanged."""
    assert 'clip-path="url(#clip' in PLOTLY_SVG and "fill: url(#g" in PLOTLY_SVG and "data:image/png" in PLOTLY_SVG
    assert sanitize_svg(PLOTLY_SVG) == PLOTLY_SVG


@pytest.mark.parametrize("style", HOSTILE_STYLES)
def test_the_url_pass_alone_neutralises_them(style):
    """svg-hush happens to mangle some spellings itself; the pass after it must not depend on that."""
    from xml.sax.saxutils import escape, quoteattr

    from services.renderer.svg_urls import clean_svg_urls

    for svg in (
        f"{SVG_OPEN}<rect style={quoteattr(style)}/></svg>",
        f"{SVG_OPEN}<style>{escape(f'rect {{ {style} }}')}</style></svg>",
        f"{SVG_OPEN}<style><![CDATA[rect {{ {style} }}]]></style></svg>",
        f"{SVG_OPEN}<svg:style xmlns:svg='http://www.w3.org/2000/svg'>{escape(style)}</svg:style></svg>",
    ):
        clean = clean_svg_urls(svg)
        assert not urls_left(clean.replace("svg:style", "style")), clean
        assert clean_svg_urls(clean) == clean


def test_character_references_cannot_hide_a_url():
    from services.renderer.svg_urls import clean_svg_urls

    clean = clean_svg_urls(f'{SVG_OPEN}<rect style="fill:&#117;&#x72;l(/x)" fill="&#x75;rl(/y)"/></svg>')
    rect = clean[clean.index("<rect") :]
    assert "/x" not in rect and "/y" not in rect and rect.count("none") == 2, clean


@pytest.mark.parametrize(
    "svg",
    [
        f'{SVG_OPEN}<rect style="fill:&u;"/></svg>',  # an entity only a DTD could define
        f"<!DOCTYPE svg>{SVG_OPEN}</svg>",
        f"{SVG_OPEN}<rect style=fill:red/></svg>",
        f'{SVG_OPEN}<rect style="fill:&#0;"/></svg>',
    ],
)
def test_what_the_pass_cannot_read_is_refused(svg):
    from services.renderer.svg_urls import UnreadableSvg, clean_svg_urls

    with pytest.raises(UnreadableSvg):
        clean_svg_urls(svg)
