"""The words of a job, defined once: statuses, formats, error types, and the request with its bounds.

Everything else takes them from here, in either language:

* Python imports them: the gateway validates requests with :func:`job_request_model`, the
  same model its OpenAPI document is made of (services/gateway/openapi.py) and the MCP
  tool's parameters come from (services/mcp/app.py); metrics label failures with
  :class:`ErrorType` (shared/metrics.py); the MCP tool's hints quote the limits from Settings;
* JavaScript imports ``web/runtime/vocabulary.mjs``, generated from this module
  (``python -m shared.codegen``, which also writes the page contract's JSON Schema);
  a unit test keeps both current;
* the docs' tables of error types and formats are generated from it (:func:`error_table`).

An error type says what kind of thing went wrong, in one word a program can branch on. A
job's own Python exception keeps its class name (``ValueError``, ``KeyError``, …); the
types here are plotfarm's, each with one meaning. Adding one here is all it takes for
every consumer to know it (tests/unit/test_vocabulary.py shows that on a scratch copy).
"""

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, create_model, model_validator
from pydantic.fields import FieldInfo

from shared.settings import Settings


class JobStatus(StrEnum):
    """Where a job is. Status only moves forward: queued, running, then done or failed."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINAL_STATUSES: frozenset[str] = frozenset({JobStatus.DONE, JobStatus.FAILED})


class Format(StrEnum):
    """What a figure can be returned as: every format Kaleido writes, and the figure itself."""

    SVG = "svg"
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    PDF = "pdf"
    JSON = "json"
    HTML = "html"


FORMATS: tuple[str, ...] = tuple(Format)
# Drawn as pixels: `scale` times the figure's size, held to the pixel cap (max_png_pixels).
RASTER_FORMATS: frozenset[str] = frozenset({Format.PNG, Format.JPEG, Format.WEBP})
# Bytes, not text: carried in a result as base64.
BINARY_FORMATS: frozenset[str] = RASTER_FORMATS | {Format.PDF}
# What a file of each format is named with (``.jpg`` is read as ``jpeg`` too: FORMAT_BY_EXTENSION).
FILE_EXTENSIONS: dict[str, str] = {fmt: fmt.value for fmt in Format}
FORMAT_BY_EXTENSION: dict[str, str] = {**{fmt.value: fmt.value for fmt in Format}, "jpg": Format.JPEG.value}
# A format's name as a field's type: its values inline in JSON Schema (an enum would be a $ref).
FormatName = Literal[FORMATS]
CONTENT_TYPES: dict[str, str] = {
    Format.SVG: "image/svg+xml",
    Format.PNG: "image/png",
    Format.JPEG: "image/jpeg",
    Format.WEBP: "image/webp",
    Format.PDF: "application/pdf",
    Format.JSON: "application/json",
    Format.HTML: "text/html",
}
FORMAT_MEANINGS: dict[str, str] = {
    Format.SVG: "the figure drawn by plotly.js, as a sanitised SVG document (the default)",
    Format.PNG: "the figure drawn by plotly.js, as a PNG image (`scale` times its pixels)",
    Format.JPEG: "as PNG, a JPEG image, drawn on white as Kaleido's (JPEG has no transparency)",
    Format.WEBP: "as PNG, a WebP image",
    Format.PDF: "the SVG printed by Chromium to a one-page vector PDF the figure's size (text stays text)",
    Format.JSON: "the figure as plotly.js received it: `data`, `layout`, `frames`",
    Format.HTML: "a standalone interactive page made from that JSON, plotly.js inlined, offline",
}


class ErrorType(StrEnum):
    """plotfarm's own error types (a job's Python exceptions keep their class names)."""

    TIMEOUT = "TimeoutError"
    MEMORY = "MemoryError"
    RECURSION = "RecursionError"
    NO_FIGURE = "NoFigureError"
    OUTPUT_LIMIT_EXCEEDED = "OutputLimitExceeded"
    RENDER_ERROR = "RenderError"
    UNSAFE_SVG = "UnsafeSvg"
    INTERPRETER_TERMINATED = "InterpreterTerminated"
    INTERPRETER_ERROR = "InterpreterError"
    RENDERER_CRASHED = "RendererCrashed"
    RENDERER_ERROR = "RendererError"
    PLOTLY_ERROR = "PlotlyError"
    # Only the client page (web/client) makes these, in the visitor's own browser.
    START_ERROR = "StartError"
    GATEWAY_ERROR = "GatewayError"


ERROR_MEANINGS: dict[str, str] = {
    ErrorType.TIMEOUT: "the code ran past its time limit (`timeout_s`), or its figures took longer to draw "
    "than `PLOTFARM_EXPORT_TIMEOUT_S`",
    ErrorType.MEMORY: "the code needed more memory than its interpreter may have "
    "(`PLOTFARM_INTERPRETER_MAX_HEAP_MB`); numpy's allocation errors included",
    ErrorType.RECURSION: "the code recursed too deep (Python's own)",
    ErrorType.NO_FIGURE: "the code ran but showed no figure and left none in `fig`",
    ErrorType.OUTPUT_LIMIT_EXCEEDED: "the job's output is over a limit: figures, their JSON, SVG or PNG, "
    "nesting, or the whole result",
    ErrorType.RENDER_ERROR: "plotly.js could not draw a figure the code showed",
    ErrorType.UNSAFE_SVG: "an SVG could not be sanitised, so it is not published",
    ErrorType.INTERPRETER_TERMINATED: "the interpreter was stopped under the run (the client page's Stop)",
    ErrorType.INTERPRETER_ERROR: "the interpreter failed, or what it answered could not be read",
    ErrorType.RENDERER_CRASHED: "the job crashed its renderer page on every delivery; it is not retried",
    ErrorType.RENDERER_ERROR: "a bug of plotfarm's own while handling the job; report it",
    ErrorType.START_ERROR: "the client page's interpreter did not start",
    ErrorType.PLOTLY_ERROR: "plotly (in Python) refused the figure the code made, or plotly.js could not draw "
    "one on the client page",
    ErrorType.GATEWAY_ERROR: "the client page could not reach the gateway",
}
# After these an interpreter is not reused, even where the isolation setting allows reuse.
SPOILING_ERRORS: frozenset[str] = frozenset({ErrorType.TIMEOUT, ErrorType.MEMORY, ErrorType.RECURSION})


class Bound(BaseModel):
    """A range a request field must lie in: inclusive, unless ``exclusive_minimum`` (then above ``minimum``)."""

    minimum: int | float
    maximum: int | float
    exclusive_minimum: bool = False

    def constraints(self) -> dict[str, int | float]:
        """This bound as pydantic's Field() keywords."""
        low = "gt" if self.exclusive_minimum else "ge"
        return {low: self.minimum, "le": self.maximum}


# The request's bounds that are not settings (those follow Settings: job_request_model).
WIDTH = Bound(minimum=50, maximum=5000)
HEIGHT = Bound(minimum=50, maximum=5000)
# As plotly's write_image: any positive factor; the pixel cap (max_png_pixels) is checked too.
SCALE = Bound(minimum=0, maximum=10, exclusive_minimum=True)
# What an input file may be named: one plain name in the job's working directory. No path
# separators, no NUL or other control characters, not only dots ("." or ".."); at most
# MAX_FILE_NAME_BYTES of UTF-8 (which JSON Schema cannot say: checked apart, as the code's size is).
_NAME_CHAR = r"[^/\\\x00-\x1f\x7f]"
FILE_NAME_PATTERN = rf"^{_NAME_CHAR}*[^/\\\x00-\x1f\x7f.]{_NAME_CHAR}*$"
MAX_FILE_NAME_BYTES = 255
# What a variable may be named: a Python identifier that does not start with "__" (keywords are
# refused apart: keyword.iskeyword).
VARIABLE_NAME_PATTERN = r"^(_|_[A-Za-z0-9][A-Za-z0-9_]*|[A-Za-z][A-Za-z0-9_]*)$"


class InputFile(BaseModel):
    """One input file's content: exactly one of ``text`` (stored as UTF-8) or ``base64`` (any bytes)."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr | None = Field(None, description="The file's content as text; written as UTF-8.")
    base64: StrictStr | None = Field(None, description="The file's bytes, base64 (RFC 4648, standard alphabet).")

    @model_validator(mode="after")
    def _one_content(self) -> "InputFile":
        if (self.text is None) == (self.base64 is None):
            raise ValueError("give exactly one of text or base64")
        return self


class JobRequest(BaseModel):
    """The body of ``POST /api/jobs``. The bounds that follow Settings are added by :func:`job_request_model`."""

    model_config = ConfigDict(extra="forbid")

    code: StrictStr | None = Field(
        None, description="Python code; every `fig.show()` is one figure. Give `code` or `figure`, not both."
    )
    figure: dict[str, Any] | list[dict[str, Any]] | None = Field(
        None,
        description="A Plotly figure (`data`, `layout`, `frames`), or a list of them, drawn by plotly.js without "
        "running any Python (what `fig.to_json()` writes). Give `code` or `figure`, not both.",
    )
    files: dict[Annotated[str, Field(pattern=FILE_NAME_PATTERN)], InputFile] | None = Field(
        None,
        description="Input files by name, for `code` to read from its working directory "
        "(`pd.read_csv(\"sales.csv\")`), read-only and seen by this job alone.",
    )
    variables: dict[Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN)], Any] | None = Field(
        None, description="JSON values bound as Python globals before `code` runs (`{\"n\": 3}` makes `n = 3`)."
    )
    width: StrictInt | None = Field(
        None, ge=WIDTH.minimum, le=WIDTH.maximum, description="Figure width in pixels when the layout sets none."
    )
    height: StrictInt | None = Field(
        None, ge=HEIGHT.minimum, le=HEIGHT.maximum, description="Figure height in pixels when the layout sets none."
    )
    timeout_s: StrictFloat | StrictInt | None = Field(None, gt=0, description="The code's time limit in seconds.")
    formats: list[FormatName] | None = Field(None, min_length=1, max_length=len(FORMATS), description="Default: svg.")
    scale: StrictFloat | StrictInt | None = Field(
        None,
        **SCALE.constraints(),
        description="Image pixels per figure pixel, for PNG, JPEG and WebP (as plotly's `write_image`).",
    )

    @model_validator(mode="after")
    def _code_or_figure(self) -> "JobRequest":
        if (self.code is None) == (self.figure is None):
            raise ValueError("give exactly one of code or figure")
        if self.figure is not None and (self.files or self.variables):
            raise ValueError("files and variables are for code; a figure job runs no Python")
        return self


def _with(field: FieldInfo, *constraints: Any, **info: Any) -> tuple[Any, FieldInfo]:
    """A model field's type and default with more constraints and documentation."""
    extra = (*field.metadata, *constraints)
    annotation = Annotated[(field.annotation, *extra)] if extra else field.annotation
    default = field.default_factory if field.default_factory else field.default
    key = "default_factory" if field.default_factory else "default"
    return annotation, Field(**{key: default}, description=info.pop("description", field.description), **info)


def job_request_model(settings: Settings) -> type[JobRequest]:
    """:class:`JobRequest` with the bounds that follow ``settings``: what the gateway validates,
    documents in its OpenAPI document, and what the MCP tool takes.

    ``code`` must hold something besides white space; its size is at most
    ``max_code_bytes`` of UTF-8, which JSON Schema cannot say (its ``maxLength``
    counts characters): the gateway checks it apart, with a 413. ``timeout_s`` is at
    most ``max_timeout_s``.
    """
    fields = JobRequest.model_fields
    return create_model(
        "JobRequest",
        __base__=JobRequest,
        __doc__=JobRequest.__doc__,
        code=_with(
            fields["code"],
            pattern=r"\S",
            description=(
                f"Python code, at most {settings.max_code_bytes} bytes of UTF-8 (longer code is refused with "
                "413). It runs in Pyodide with plotly, numpy and pandas; every `fig.show()` is one figure."
            ),
        ),
        files=_with(
            fields["files"],
            annotated_types.MaxLen(settings.max_input_files),
            description=(
                f"{fields['files'].description} At most {settings.max_input_files} files of at most "
                f"{settings.max_input_bytes} bytes together with `variables` (more is refused with 413). A name is "
                f"one plain file name (no `/`, `\\`, `..` or control characters, at most {MAX_FILE_NAME_BYTES} bytes)."
            ),
        ),
        variables=_with(
            fields["variables"],
            description=f"{fields['variables'].description} They count toward the {settings.max_input_bytes} bytes "
            "of input, as JSON.",
        ),
        timeout_s=_with(
            fields["timeout_s"],
            annotated_types.Le(settings.max_timeout_s),
            description=(
                f"The code's time limit in seconds (default {settings.default_timeout_s:g}, "
                f"at most {settings.max_timeout_s:g})."
            ),
        ),
        width=_with(fields["width"], description=f"{fields['width'].description} Default: {settings.default_width}."),
        height=_with(
            fields["height"], description=f"{fields['height'].description} Default: {settings.default_height}."
        ),
    )


# ---- docs and JavaScript, generated from the above -----------------------------------------


def error_table() -> str:
    """The error types as a Markdown table, for the docs."""
    rows = [f"| `{kind}` | {ERROR_MEANINGS[kind]} |" for kind in ErrorType]
    return "\n".join(["| error type | meaning |", "|---|---|", *rows]) + "\n"


def format_table() -> str:
    rows = [f"| `{fmt}` | `{CONTENT_TYPES[fmt]}` | {FORMAT_MEANINGS[fmt]} |" for fmt in Format]
    return "\n".join(["| format | content type | what |", "|---|---|---|", *rows]) + "\n"


def _js_object(mapping: dict) -> str:
    return "Object.freeze(" + json.dumps(mapping, indent=2) + ")"


def javascript() -> str:
    """web/runtime/vocabulary.mjs."""
    bounds = {name: bound.model_dump() for name, bound in (("width", WIDTH), ("height", HEIGHT), ("scale", SCALE))}
    parts = [
        "// The words of a job: generated by `python -m shared.codegen` from shared/vocabulary.py; do not edit.",
        "",
        f"export const STATUS = {_js_object({status.name: status.value for status in JobStatus})};",
        f"export const FINAL_STATUSES = Object.freeze({json.dumps(sorted(FINAL_STATUSES))});",
        f"export const FORMAT = {_js_object({fmt.name: fmt.value for fmt in Format})};",
        f"export const FORMATS = Object.freeze({json.dumps(list(FORMATS))});",
        f"export const CONTENT_TYPES = {_js_object({str(k): v for k, v in CONTENT_TYPES.items()})};",
        "/** Drawn as pixels: `scale` times the figure's size, held to the pixel cap; in this order. */",
        f"export const RASTER_FORMATS = Object.freeze({json.dumps([f.value for f in Format if f in RASTER_FORMATS])});",
        "/** Bytes, not text: carried in a result as base64. */",
        f"export const BINARY_FORMATS = Object.freeze({json.dumps([f.value for f in Format if f in BINARY_FORMATS])});",
        "/** plotfarm's error types (a job's Python exceptions keep their class names). */",
        f"export const ERROR = {_js_object({kind.name: kind.value for kind in ErrorType})};",
        f"export const ERROR_MEANINGS = {_js_object({str(k): v for k, v in ERROR_MEANINGS.items()})};",
        "/** After these an interpreter is not reused, even where reuse is allowed. */",
        f"export const SPOILING_ERRORS = Object.freeze({json.dumps(sorted(SPOILING_ERRORS))});",
        "/** The request's bounds that are not settings (inclusive). */",
        f"export const REQUEST_BOUNDS = {_js_object(bounds)};",
        "",
    ]
    return "\n".join(parts)
