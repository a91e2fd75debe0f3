"""The contract between the browser runtime (web/) and the renderer service, defined once.

A job crosses three hands before it becomes a :class:`~shared.messages.RenderResult`:

1. ``plotfarm_capture.run`` (Python inside Pyodide) runs the code and returns a
   :class:`RunOutput` as one JSON document (each figure encoded once);
2. the interpreter's Web Worker (``web/runtime/interpreter-worker.mjs``) adds
   what loading packages and running took; its host (``interpreter.mjs``) parses
   the document once, or makes a :class:`RunOutput` itself when the run timed
   out or its worker died (``web/runtime/contract.mjs``);
3. the renderer page (``web/renderer/renderer.mjs``) turns the figures into
   SVG and raster images, keeps their JSON when asked, and answers
   ``plotfarm.exportFigures(job)`` with a :class:`PageResult` (the service then
   prints any PDF from the sanitised SVG: services/renderer/page.py).

A figure job (a :class:`~shared.messages.RenderJob` with ``figures``) skips
steps 1 and 2: the service hands the page its figures as one JSON document
shaped like a :class:`RunOutput`, which the page bounds exactly as it bounds
a worker's (``plotfarm.drawFigures``).

The renderer validates every answer against :class:`PageResult` (unknown
fields are an error), so the two sides cannot drift apart silently;
``web/runtime/page-result.schema.json`` is generated from these models
(``python -m shared.codegen``, with the job's vocabulary) for the JavaScript
side to read, and a unit test keeps it current. The limits a job's output must respect are
:class:`OutputLimits`, handed to the page with every job.

Nothing a job produces is trusted on the way: the page bounds what the worker
says (web/runtime/bounds.mjs), and the renderer bounds what the page says
(:func:`bounded_answer`): every string made encodable (lone surrogates
escaped), nesting and sizes held to the limits, texts cut with a marker. A
job that lifted its own limits inside its interpreter still gets these.
"""

import json
import re
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from shared.messages import Figure, JobError
from shared.settings import PROJECT_ROOT, Settings
from shared.vocabulary import RASTER_FORMATS, ErrorType

# Warnings one result may carry, and characters of each (as web/runtime/bounds.mjs).
MAX_WARNINGS = 50
MAX_WARNING_CHARS = 1000
# A page answer is a figure's JSON (max_figure_depth) inside a few levels of its own.
ANSWER_DEPTH = 8
# What the page may add to a figure before it becomes the JSON format (offline map styles).
SPEC_ALLOWANCE = 64 * 1024
SCHEMA_PATH = PROJECT_ROOT / "web" / "runtime" / "page-result.schema.json"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutputLimits(Strict):
    """How much output one job may produce (from Settings; the page passes them to the interpreter)."""

    max_figures: int = Field(description="Figures one job may show.")
    max_figure_bytes: int = Field(description="JSON of one captured figure.")
    max_total_figure_bytes: int = Field(description="JSON of all of a job's figures together.")
    max_figure_depth: int = Field(description="Levels of nested arrays and objects in one figure's JSON.")
    max_svg_bytes: int = Field(description="One rendered SVG.")
    max_png_pixels: int = Field(
        description="Pixels of one PNG, JPEG or WebP (width x height x scale²), checked before drawing it."
    )
    max_png_bytes: int = Field(description="One PNG file; one JPEG or WebP file too.")
    max_pdf_bytes: int = Field(description="One PDF file.")
    max_output_chars: int = Field(description="Captured stdout, and stderr, each; the rest is cut with a marker.")
    max_error_chars: int = Field(
        description="An error's message, and its traceback, each; the rest is cut with a marker."
    )
    max_answer_chars: int = Field(
        description="The interpreter's whole answer (one JSON document), read only when no longer than this."
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> "OutputLimits":
        # Leave room in the result for the SVGs, which are bigger than the JSON.
        total_figures = settings.max_result_bytes // 4
        texts = 2 * settings.max_output_chars + 2 * settings.max_error_chars + MAX_WARNINGS * MAX_WARNING_CHARS
        return cls(
            max_figures=settings.max_figures,
            max_figure_bytes=settings.max_figure_bytes,
            max_total_figure_bytes=total_figures,
            max_figure_depth=settings.max_figure_depth,
            max_svg_bytes=settings.max_svg_bytes,
            max_png_pixels=settings.max_png_pixels,
            max_png_bytes=settings.max_png_bytes,
            max_pdf_bytes=settings.max_pdf_bytes,
            max_output_chars=settings.max_output_chars,
            max_error_chars=settings.max_error_chars,
            # JSON writes a character as at most 12 ("\ud83d\ude00"), and a limit cut adds a marker.
            max_answer_chars=total_figures + 12 * texts + 64 * 1024,
        )


class RunOutput(Strict):
    """What running the code gave, as the interpreter reports it (before any SVG)."""

    figures: list[dict] = Field(description="Each figure shown, as plotly.js will receive it.")
    stdout: str
    stderr: str
    error: JobError | None
    warnings: list[str] = Field(description="What the run itself changed, such as figures beyond the limit left out.")


class PageTimings(Strict):
    """Milliseconds, measured in the page; the same names as in :class:`~shared.messages.Timings`."""

    wait_ms: float = Field(description="Waiting for a fresh interpreter.")
    load_ms: float = Field(description="Loading the packages the code imports that the interpreter lacked.")
    run_ms: float = Field(description="Running the code.")
    svg_ms: float = Field(description="Turning the figures into SVG.")


class PageResult(Strict):
    """The renderer page's answer for one job (``plotfarm.render``)."""

    figures: list[Figure] = Field(
        description="Each figure in the formats the job asked for, in the order shown; empty on failure."
    )
    stdout: str
    stderr: str
    error: JobError | None
    packages: list[str] = Field(description="Packages loaded for this job's imports.")
    warnings: list[str] = Field(
        description="What was drawn differently than asked: tiles not loaded, WebGL rasterised, fonts substituted."
    )
    timings: PageTimings

    def within(self, limits: OutputLimits) -> "PageResult":
        """This answer with its texts cut to ``limits``, or failed when a figure is over them."""
        stdout = cut(self.stdout, limits.max_output_chars, "output")
        stderr = cut(self.stderr, limits.max_output_chars, "output")
        error = self.error
        if error is not None:
            error = JobError(
                type=cut(error.type, 100, "type"),
                message=cut(error.message, limits.max_error_chars, "message"),
                traceback=cut(error.traceback, limits.max_error_chars, "traceback"),
            )
        problem = None if error else self._figure_problem(limits)
        if problem:
            error = JobError(type=ErrorType.OUTPUT_LIMIT_EXCEEDED, message=problem)
        return self.model_copy(
            update={
                "figures": [] if error else self.figures,
                "stdout": stdout,
                "stderr": stderr,
                "error": error,
                "warnings": []
                if error
                else [cut(w, MAX_WARNING_CHARS, "warning") for w in self.warnings[:MAX_WARNINGS]],
                "packages": [cut(p, 100, "name") for p in self.packages[:100]],
            }
        )

    def _figure_problem(self, limits: OutputLimits) -> str | None:
        if len(self.figures) > limits.max_figures:
            return f"{len(self.figures)} figures; the limit is {limits.max_figures}"
        for n, figure in enumerate(self.figures, 1):
            if figure.svg is not None and len(figure.svg) > limits.max_svg_bytes:
                return f"figure {n} is {len(figure.svg)} bytes of SVG; the limit is {limits.max_svg_bytes}"
            for fmt in sorted(RASTER_FORMATS):
                encoded = getattr(figure, fmt)
                size = len(encoded) * 3 // 4 if encoded is not None else 0
                if size > limits.max_png_bytes:
                    return f"figure {n} is {size} bytes of {fmt.upper()}; the limit is {limits.max_png_bytes}"
            pdf_bytes = len(figure.pdf) * 3 // 4 if figure.pdf is not None else 0
            if pdf_bytes > limits.max_pdf_bytes:
                return f"figure {n} is {pdf_bytes} bytes of PDF; the limit is {limits.max_pdf_bytes}"
            spec_bytes = len(json.dumps(figure.spec)) if figure.spec is not None else 0
            if spec_bytes > limits.max_figure_bytes + SPEC_ALLOWANCE:
                return f"figure {n} is {spec_bytes} bytes of JSON; the limit is {limits.max_figure_bytes}"
        return None


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with its lone surrogates (no text, and no UTF-8 for them) as backslash escapes (``\\ud800``).

    JavaScript strings may hold them (``print(chr(0xD800))`` in a job), and
    they would make the result impossible to encode; escaped, what the job
    wrote stays readable instead of being dropped.
    """
    if LONE_SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class TooDeep(ValueError):
    """A value nests arrays and objects deeper than allowed."""


def encodable_value(value: Any, max_depth: int, depth: int = 1) -> Any:
    """A copy of a JSON value with every string (object keys too) :func:`encodable`;
    :class:`TooDeep` past ``max_depth`` levels of arrays and objects."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict | list) and depth > max_depth:
        raise TooDeep(f"nested more than {max_depth} levels deep")
    if isinstance(value, dict):
        return {encodable(str(k)): encodable_value(v, max_depth, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable_value(v, max_depth, depth + 1) for v in value]
    return value


def cut(text: str, limit: int, what: str) -> str:
    """``text`` cut to ``limit`` characters, with a marker that says how many went (as bounds.mjs)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[plotfarm: {what} truncated, {len(text) - limit} more characters dropped]\n"


def failed_answer(
    error_type: str, message: str, *, run_ms: float = 0.0, stdout: str = "", stderr: str = ""
) -> "PageResult":
    """A PageResult for a job the page could not answer for (or whose answer cannot be used)."""
    return PageResult(
        figures=[],
        stdout=stdout,
        stderr=stderr,
        error=JobError(type=error_type, message=message),
        packages=[],
        warnings=[],
        timings=PageTimings(wait_ms=0, load_ms=0, run_ms=run_ms, svg_ms=0),
    )


def bounded_answer(answer: Any, limits: OutputLimits) -> PageResult:
    """The page's answer as a PageResult held to ``limits``, whatever the page (or the job) put in it.

    Strings are made encodable; texts are cut to their limits; too deep a
    figure, too many figures or too big a file fails the job with
    ``OutputLimitExceeded``; an answer of the wrong shape fails it with
    ``RendererError``. Never raises.
    """
    try:
        safe = encodable_value(answer, limits.max_figure_depth + ANSWER_DEPTH)
    except TooDeep:
        return failed_answer(
            ErrorType.OUTPUT_LIMIT_EXCEEDED, f"a figure is nested more than {limits.max_figure_depth} levels deep"
        )
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:
        return failed_answer(ErrorType.RENDERER_ERROR, f"the renderer page's answer could not be read: {exc!r}"[:500])
    try:
        result = PageResult.model_validate(safe)
    except ValidationError as exc:
        return failed_answer(ErrorType.RENDERER_ERROR, f"the renderer page answered outside its contract: {exc}"[:4000])
    return result.within(limits)


def _counter(metric: str) -> dict:
    return {"metric": metric, "kind": "counter"}


def _gauge(metric: str) -> dict:
    return {"metric": metric, "kind": "gauge"}


class PoolStats(BaseModel):
    """One renderer page's interpreter pool (``plotfarm.stats()`` in renderer.mjs), for /stats and metrics.

    A field with a ``metric`` (in its JSON Schema extra) is exported under that name by
    shared/metrics.py: a counter only grows while one page lives; a gauge is a count now.
    """

    model_config = ConfigDict(extra="forbid")

    isolation: str = Field(description="The isolation setting the pool runs with.")
    fresh: int = Field(
        description="Fresh interpreters ready for a job.", json_schema_extra=_gauge("plotfarm_interpreters_spare")
    )
    restoring: int = Field(
        description="Interpreters being restored now.", json_schema_extra=_gauge("plotfarm_interpreters_restoring")
    )
    waiting: int = Field(
        description="Jobs waiting for a fresh interpreter.",
        json_schema_extra=_gauge("plotfarm_interpreter_waiting_jobs"),
    )
    reusable: int = Field(
        description="Used interpreters kept for their tenant's next job.",
        json_schema_extra=_gauge("plotfarm_interpreters_reusable"),
    )
    restores: int = Field(
        description="Interpreters restored from the snapshot.",
        json_schema_extra=_counter("plotfarm_interpreter_restores"),
    )
    restoreFailures: int = Field(
        description="Interpreter restores that failed.",
        json_schema_extra=_counter("plotfarm_interpreter_restore_failures"),
    )
    discarded: int = Field(
        description="Interpreters terminated after a job (not kept for reuse).",
        json_schema_extra=_counter("plotfarm_interpreters_discarded"),
    )
    reused: int = Field(
        description="Jobs that ran in an interpreter kept from an earlier job.",
        json_schema_extra=_counter("plotfarm_interpreters_reused"),
    )
    snapshotMs: float = Field(description="Milliseconds from the page's start until its snapshot was made or read.")
    snapshotSource: str | None = Field(None, description='"made" (from scratch) or "stored" (read from disk).')
    restoreMsMedian: float | None = Field(None, description="Median of the last (up to 200) restores, milliseconds.")
    restoreMsP95: float | None = Field(None, description="95th percentile of the same.")
    recentRestoreMs: list[float] = Field(
        description="The last (up to 200) restore times, newest last: with `restores`, each new one is observed once."
    )
    recentRestorePhases: list[dict] = Field(
        description="The same restores phase by phase (scripts/profile_restore.py)."
    )

    @classmethod
    def metrics(cls, kind: str) -> dict[str, tuple[str, str]]:
        """Field name -> (metric name, help) for the fields exported as ``kind`` ("counter" or "gauge")."""
        return {
            name: (field.json_schema_extra["metric"], field.description)
            for name, field in cls.model_fields.items()
            if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("kind") == kind
        }


def json_schema() -> dict:
    models = (OutputLimits, RunOutput, PageResult, PoolStats)
    _, schema = models_json_schema([(model, "validation") for model in models])
    return {
        "$comment": "Generated by `python -m shared.codegen` from shared/page_contract.py; do not edit.",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.exit("generated with the vocabulary now: python -m shared.codegen")
