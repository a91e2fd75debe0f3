"""The tables the docs take from the code, written between marker comments in the Markdown pages.

    python -m scripts.docs_tables            # rewrite every generated table in README.md and docs/*.md
    python -m scripts.docs_tables --check    # exit 1, naming the pages, if any is out of date

A page holds a generated table as::

    <!-- generated: configuration; edit shared/settings.py, then run python -m scripts.docs_tables -->
    ...the table, replaced on every run...
    <!-- end generated -->

and the prose around it is the page's own. The tables:

* ``configuration``: every field of :class:`shared.settings.Settings`, grouped as the class groups
  them (its ``# Broker``, ``# Gateway``, ... comments), with its environment variable
  (``PLOTFARM_`` + the field's name; older names from its ``validation_alias`` too), its
  default (paths relative to the project root) and what it may be, and its description;
* ``errors`` and ``formats``: :func:`shared.vocabulary.error_table` and
  :func:`shared.vocabulary.format_table`;
* ``limits``: the limits a job runs under, from the defaults of the same settings.

tests/unit/test_docs.py checks that running this changes nothing.
"""

import argparse
import ast
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import annotated_types
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from shared import settings as settings_module
from shared import vocabulary
from shared.settings import PROJECT_ROOT, Settings

ENV_PREFIX = Settings.model_config["env_prefix"]
MARKED = re.compile(
    r"(?P<begin><!-- generated: (?P<name>[a-z-]+)\b[^>]*-->\n)(?P<body>.*?)(?P<end><!-- end generated -->)", re.S
)
# A default made by a function when the settings are read, described instead of computed here.
FACTORY_DEFAULTS = {settings_module._default_renderer_id: "`<hostname>-<pid>`"}


def pages() -> list[Path]:
    """The pages that may hold generated tables."""
    return [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


# ---- configuration ---------------------------------------------------------------------------


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, its own name first."""
    own = f"{ENV_PREFIX}{name}".upper()
    alias = field.validation_alias
    if alias is None:
        return [own]
    if not isinstance(alias, AliasChoices) or not all(isinstance(choice, str) for choice in alias.choices):
        raise ValueError(f"{name}: describe this validation_alias in scripts/docs_tables.py: {alias!r}")
    return [own, *(choice for choice in alias.choices if choice.upper() != own)]


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Path):
        return value.relative_to(PROJECT_ROOT).as_posix() if value.is_relative_to(PROJECT_ROOT) else str(value)
    return str(value)


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        if field.default_factory not in FACTORY_DEFAULTS:
            raise ValueError(f"describe the default factory {field.default_factory!r} in FACTORY_DEFAULTS")
        return FACTORY_DEFAULTS[field.default_factory]
    if field.default is None:
        return "none"
    if field.default == "":
        return "empty"
    return f"`{_value(field.default)}`"


def _literals(annotation: object) -> list[str] | None:
    """The values a Literal (or a union of Literals and bool) allows; None for any other type."""
    if typing.get_origin(annotation) is typing.Literal:
        return [_value(v) for v in typing.get_args(annotation)]
    if annotation is bool:
        return ["true", "false"]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [_literals(arg) for arg in typing.get_args(annotation)]
        if all(part is not None for part in parts):
            return [value for part in parts for value in part]
    return None


def allowed_text(field: FieldInfo) -> str:
    """What a field may be set to, from its type and constraints: ``1–64``, ``≥ 1``, ``job, tenant, none``."""
    literals = _literals(field.annotation)
    if literals is not None:
        return ", ".join(f"`{value}`" for value in literals)
    low = high = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"≥ {_value(item.ge)}", item.ge
        elif isinstance(item, annotated_types.Gt):
            low = f"> {_value(item.gt)}", item.gt
        elif isinstance(item, annotated_types.Le):
            high = f"≤ {_value(item.le)}", item.le
        elif isinstance(item, annotated_types.Lt):
            high = f"< {_value(item.lt)}", item.lt
        elif getattr(item, "pattern", None):
            return f"`{item.pattern}`"
    if low and high and low[0].startswith("≥") and high[0].startswith("≤"):
        return f"{_value(low[1])}–{_value(high[1])}"
    return ", ".join(text for text, _ in filter(None, (low, high)))


def field_groups() -> list[tuple[str, list[str]]]:
    """The Settings fields in order, under the comment line that heads each group in shared/settings.py."""
    source = inspect.getsource(settings_module)
    lines = source.splitlines()
    tree = ast.parse(source)
    (cls,) = (node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == Settings.__name__)
    groups: list[tuple[str, list[str]]] = []
    previous_end = cls.lineno
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            comments = [
                line.strip()[1:].strip()
                for line in lines[previous_end : node.lineno - 1]
                if line.strip().startswith("#")
            ]
            if comments or not groups:
                title = comments[0] if comments else "Settings"
                groups.append((title.split(" (")[0].split(":")[0].strip(), []))
            groups[-1][1].append(node.target.id)
        previous_end = node.end_lineno or node.lineno
    named = [name for _, names in groups for name in names]
    if named != list(Settings.model_fields):
        raise ValueError("the fields found in shared/settings.py are not Settings.model_fields")
    return groups


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def configuration_table() -> str:
    out: list[str] = []
    for title, names in field_groups():
        out += [f"## {title}", "", "| variable | default | allowed | meaning |", "|---|---|---|---|"]
        for name in names:
            field = Settings.model_fields[name]
            if not field.description:
                raise ValueError(f"Settings.{name} has no description")
            own, *older = env_names(name, field)
            variable = f"`{own}`" + (f" (or {', '.join(f'`{n}`' for n in older)})" if older else "")
            out.append(f"| {variable} | {default_text(field)} | {allowed_text(field)} | {_cell(field.description)} |")
        out.append("")
    return "\n".join(out)


# ---- limits (README) -------------------------------------------------------------------------


def _bytes(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000} MB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n:,} bytes"


def _mb(n: int) -> str:
    return f"{n // 1024} GiB" if n % 1024 == 0 else f"{n} MiB"


def _env(*names: str) -> str:
    return ", ".join(f"`{ENV_PREFIX}{name.upper()}`" for name in names)


def limits_table() -> str:
    """A job's limits, with the defaults of the settings that set them."""
    d = {name: field.default for name, field in Settings.model_fields.items()}
    s = _value
    renderer_mb = settings_module.renderer_memory_mb(types.SimpleNamespace(**d))
    rows = [
        ("time", f"{s(d['default_timeout_s'])} s by default, at most {s(d['max_timeout_s'])} s (`timeout_s`); then "
         f"{s(d['export_timeout_s'])} s to draw the figures", _env("default_timeout_s", "max_timeout_s", "export_timeout_s")),
        ("code", f"{_bytes(d['max_code_bytes'])} of UTF-8", _env("max_code_bytes")),
        ("input files", f"{d['max_input_files']} per job, {_bytes(d['max_input_bytes'])} with the variables",
         _env("max_input_files", "max_input_bytes")),
        ("figures", f"{d['max_figures']} per job", _env("max_figures")),
        ("figure JSON", f"{_bytes(d['max_figure_bytes'])} per figure, nested at most {d['max_figure_depth']} levels",
         _env("max_figure_bytes", "max_figure_depth")),
        ("SVG", f"{_bytes(d['max_svg_bytes'])} per figure", _env("max_svg_bytes")),
        ("PNG, JPEG, WebP", f"{_bytes(d['max_png_bytes'])} and {d['max_png_pixels']:,} pixels per figure "
         f"(`scale` {'above' if vocabulary.SCALE.exclusive_minimum else 'from'} {s(vocabulary.SCALE.minimum)}, "
         f"at most {s(vocabulary.SCALE.maximum)})",
         _env("max_png_bytes", "max_png_pixels")),
        ("PDF", f"{_bytes(d['max_pdf_bytes'])} per figure", _env("max_pdf_bytes")),
        ("result", f"{_bytes(d['max_result_bytes'])} in all", _env("max_result_bytes")),
        ("output", f"{d['max_output_chars']:,} characters of stdout and of stderr; {d['max_error_chars']:,} of an "
         "error's message and of its traceback", _env("max_output_chars", "max_error_chars")),
        ("memory", f"{_mb(d['interpreter_max_heap_mb'])} per job's interpreter (then `MemoryError`), "
         f"{_mb(d['js_heap_mb'])} of JavaScript heap; so a renderer running {d['renderer_concurrency']} jobs at a "
         f"time needs up to {renderer_mb / 1024:.1f} GiB",
         _env("interpreter_max_heap_mb", "js_heap_mb", "renderer_concurrency")),
        ("submissions", f"{d['rate_limit_per_minute']} a minute per tenant or address, bursts of {d['rate_limit_burst']}",
         _env("rate_limit_per_minute", "rate_limit_burst")),
    ]  # fmt: skip
    lines = ["| limit | default | set by |", "|---|---|---|"]
    lines += [f"| {what} | {value} | {env} |" for what, value, env in rows]
    return "\n".join(lines) + "\n"


# ---- the pages -------------------------------------------------------------------------------

TABLES: dict[str, Callable[[], str]] = {
    "configuration": configuration_table,
    "errors": vocabulary.error_table,
    "formats": vocabulary.format_table,
    "limits": limits_table,
}


def render(text: str, tables: dict[str, str] | None = None) -> str:
    """``text`` with every generated table replaced by its current version."""
    tables = tables if tables is not None else {name: make() for name, make in TABLES.items()}

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in tables:
            raise ValueError(f"unknown generated table {name!r} (known: {', '.join(tables)})")
        return f"{match['begin']}{tables[name]}{match['end']}"

    return MARKED.sub(replace, text)


def generated_names(text: str) -> list[str]:
    return [match["name"] for match in MARKED.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    tables = {name: make() for name, make in TABLES.items()}
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text, tables)
        if new != text:
            stale.append(page.relative_to(PROJECT_ROOT))
            if not args.check:
                page.write_text(new)
    verb = "out of date" if args.check else "rewrote"
    for page in stale:
        print(f"{verb}: {page}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
