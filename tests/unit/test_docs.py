"""The docs stay true to the code and to themselves.

README.md is the five-minute entry point (at most 200 lines, both commands, every docs page
linked); the rest is in docs/. Every setting is in docs/configuration.md, every generated table
is where it belongs and current (``python -m scripts.docs_tables`` would change nothing), and
every relative link in README.md, docs/*.md and deploy/README.md reaches a file, and its
``#anchor`` a heading there (GitHub's slugs).
"""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from scripts import docs_tables
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README_PATH = ROOT / "README.md"
README = README_PATH.read_text()
DOCS = ROOT / "docs"
README_MAX_LINES = 200
# Where each generated table must be (a table may appear on more pages).
GENERATED = {
    "configuration": "docs/configuration.md",
    "errors": "docs/api.md",
    "formats": "docs/api.md",
    "limits": "README.md",
}


def markdown_files() -> list[Path]:
    return [README_PATH, *sorted(DOCS.glob("*.md")), ROOT / "deploy" / "README.md"]


def test_every_setting_is_in_the_configuration_page():
    page = (DOCS / "configuration.md").read_text()
    missing = [name for name in (f"PLOTFARM_{field.upper()}" for field in Settings.model_fields) if name not in page]
    assert not missing, f"document these in docs/configuration.md (python -m scripts.docs_tables): {missing}"


def test_readme_shows_the_two_commands():
    assert "make run" in README and "make test" in README


def test_ci_runs_exactly_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"


def test_readme_is_read_in_five_minutes():
    lines = len(README.splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"
    )


def test_readme_links_every_docs_page():
    linked = {target.partition("#")[0] for target in links(README)}
    missing = [f"docs/{page.name}" for page in sorted(DOCS.glob("*.md")) if f"docs/{page.name}" not in linked]
    assert not missing, f"README.md's list of pages lacks {missing}"


# ---- generated tables ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_table_is_where_it_belongs(name):
    page = ROOT / GENERATED[name]
    assert name in docs_tables.generated_names(page.read_text()), (
        f"{GENERATED[name]} lacks <!-- generated: {name} --> ... <!-- end generated -->"
    )


@pytest.mark.parametrize("page", docs_tables.pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_generated_tables_are_current(page):
    text = page.read_text()
    assert docs_tables.render(text) == text, (
        f"{page.relative_to(ROOT)} is out of date: run python -m scripts.docs_tables"
    )


def test_a_stale_table_is_seen():
    page = (
        "Prose.\n\n<!-- generated: formats; a note -->\n| format |\n|---|\n| `svg` |\n<!-- end generated -->\n\nMore.\n"
    )
    current = docs_tables.render(page)
    assert current != page and docs_tables.render(current) == current
    assert current.startswith("Prose.\n\n<!-- generated: formats; a note -->\n| format | content type |")
    assert current.endswith("<!-- end generated -->\n\nMore.\n")
    with pytest.raises(ValueError, match="unknown generated table"):
        docs_tables.render("<!-- generated: nonesuch -->\n<!-- end generated -->")


# ---- links -----------------------------------------------------------------------------------

FENCED = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`]*`")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)=["']([^"']+)["']""", re.I)
HEADING = re.compile(r"^#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def prose(text: str) -> str:
    """The text outside code blocks and code spans, where links are links."""
    return CODE_SPAN.sub("", FENCED.sub("", text))


def links(text: str) -> list[str]:
    text = prose(text)
    return [m.group(1) for pattern in (INLINE_LINK, REFERENCE, HTML_LINK) for m in pattern.finditer(text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    heading = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    heading = re.sub(r"<[^>]+>", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for match in HEADING.finditer(FENCED.sub("", text)):
        base = slug(match.group(1))
        out.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return out


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in links(page.read_text()):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path)).resolve() if path else page
        if not dest.is_relative_to(root) or not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(root)}")
    return problems


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_reaches_its_file_and_heading(page):
    problems = broken_links(page)
    assert not problems, f"{page.relative_to(ROOT)}: {problems}"


def test_the_link_check_sees_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "there.py").write_text("")
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## Chromium's sandbox: who runs as whom\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n## A heading, with `code`\n\n"
        "[ok](../there.py) [ok](other.md#chromiums-sandbox-who-runs-as-whom) [ok](#a-heading-with-code)\n"
        "[ok](https://example.com/nowhere) `[not a link](gone.py)`\n"
        "```\n[not a link](gone.py)\n```\n"
        "[bad](../services/mcp/settings.py) [bad](other.md#who-runs-as-whom) [bad](#no-such)\n"
        "[bad](../../outside.md)\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "../services/mcp/settings.py: no such file",
        "other.md#who-runs-as-whom: no heading #who-runs-as-whom in docs/other.md",
        "#no-such: no heading #no-such in docs/page.md",
        "../../outside.md: no such file",
    ]


def test_github_slugs():
    assert slug("2026-12-03, afternoon: where a job's CPU goes; a cold start of ~3.1 s") == (
        "2026-12-03-afternoon-where-a-jobs-cpu-goes-a-cold-start-of-31-s"
    )
    assert slug("In your browser: http://localhost:3000/client-plot") == "in-your-browser-httplocalhost3000client-plot"
    assert anchors("# A\n## A\n## A\n") == {"a", "a-1", "a-2"}
