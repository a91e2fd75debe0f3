"""``render_plotly`` and ``render_figure``: submit the code (or a figure's JSON), wait for it, and answer
in MCP content blocks.

What an agent gets back, for a job that worked:

* one ``ImageContent`` (PNG) per figure: what a model can look at;
* one ``EmbeddedResource`` per figure with the SVG as text
  (``plotfarm://jobs/{id}/figures/{n}.svg``, ``image/svg+xml``): several MCP
  clients reject or crash on SVG *images*, so SVG never goes out as one;
* the code's stdout (and stderr) as text, when there is any;
* a short text with the viewer link, the job id and the timings.

A job that failed answers ``isError`` with the error type, message and
Python traceback, so the agent can fix its code and call again. Gateway
trouble (bad arguments, no key, rate limit, unreachable) also answers
``isError``, in words that say what to do about it.
"""

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable

import structlog
from mcp.types import CallToolResult, EmbeddedResource, ImageContent, TextContent, TextResourceContents

from services.mcp.gateway import GatewayClient
from shared.gateway_policy import Busy, GatewayError, Refused, Unreachable
from shared.settings import Settings
from shared.vocabulary import FINAL_STATUSES, SCALE, ErrorType, Format

log = structlog.get_logger(__name__)

# What the tool asks for: a PNG to look at, the SVG as a resource (see the module's docstring).
FORMATS = [Format.PNG.value, Format.SVG.value]


def tool_description(settings: Settings) -> str:
    """What an agent reads about the tool; the limits are this service's settings."""
    timeout = f"default {settings.default_timeout_s:g} s, at most {settings.max_timeout_s:g}"
    return f"""\
Render Plotly figures from Python code in plotfarm's sandbox and get them back as images: a PNG per \
figure to look at, plus the same figure as SVG (an embedded image/svg+xml resource).

Write ordinary Python that builds figures with plotly.express (px) or plotly.graph_objects (go) and \
call fig.show() for every figure you want back (in order, at most {settings.max_figures}). Code that never \
calls show() returns the figure left in a variable named `fig`. print() output comes back as text.

Available: Python 3.12 and its standard library, plotly (express, graph_objects, subplots, io), numpy, \
pandas, scipy, scikit-learn, and the sample datasets in px.data (iris, gapminder, tips, stocks, wind, \
...). matplotlib is there for colormaps and helpers only: return Plotly figures. Nothing can be \
installed, and there is no network and no host filesystem: put the data in the code or generate it \
with numpy/pandas (pd.read_csv("https://...") fails).

width/height (pixels) apply when the figure's layout sets no size; scale multiplies the PNG's pixels \
({SCALE.minimum:g}-{SCALE.maximum:g}, e.g. 2 for a sharp image). timeout_s is the code's time limit ({timeout}). \
If the code fails, the result is an error carrying the Python traceback: fix the code and call again.

Your own data: `files` gives the code files by name (text, e.g. CSV or JSON you hold), which it reads \
from its working directory (pd.read_csv("sales.csv"), open("data.json")); `variables` binds JSON values \
as Python globals before the code runs ({{"values": [1, 2, 3]}} makes `values` a list). At most \
{settings.max_input_files} files and {settings.max_input_bytes / 1_000_000:g} MB of files and variables together.

Example code:
import plotly.express as px
df = px.data.iris()
fig = px.scatter(df, x="sepal_width", y="sepal_length", color="species", title="Iris")
fig.show()"""


def figure_tool_description(settings: Settings) -> str:
    """What an agent reads about ``render_figure``."""
    return f"""\
Render a Plotly figure given as its JSON (what fig.to_json() writes: {{"data": [...], "layout": {{...}}}}), or \
a list of up to {settings.max_figures} of them, with plotly.js and no Python: a PNG per figure to look at, \
plus the same figure as SVG (an embedded image/svg+xml resource). Faster than render_plotly when you already \
have the figure. Nothing is fetched from the network: images or tiles by URL are left out, with a warning.

width/height (pixels) apply when the layout sets no size; scale multiplies the PNG's pixels \
({SCALE.minimum:g}-{SCALE.maximum:g}, e.g. 2 for a sharp image).

Example figure:
{{"data": [{{"type": "bar", "x": ["a", "b"], "y": [3, 1]}}], "layout": {{"title": {{"text": "Sales"}}}}}}"""


def hints(settings: Settings) -> dict[str, str]:
    """What to do about an error type, for an agent; the limits are this service's settings."""
    mb = 1_000_000
    return {
        ErrorType.TIMEOUT: "The code ran past its time limit (or its figures took too long to draw): make it "
        f"faster, plot fewer points, or raise timeout_s (at most {settings.max_timeout_s:g} s).",
        ErrorType.NO_FIGURE: "The code made no figure: build a Plotly figure and call fig.show() "
        "(or leave it in a variable named fig).",
        "ModuleNotFoundError": "Only the standard library, plotly, numpy, pandas, scipy, scikit-learn, matplotlib "
        "and pillow are available, and nothing can be installed.",
        ErrorType.OUTPUT_LIMIT_EXCEEDED: f"The output is too large: at most {settings.max_figures} figures, "
        f"{settings.max_figure_bytes / mb:g} MB of JSON and {settings.max_svg_bytes / mb:g} MB of SVG per figure, "
        f"{settings.max_output_chars:,} characters of stdout; plot fewer points or aggregate the data first.",
        ErrorType.RENDERER_CRASHED: "The code crashed the renderer repeatedly (often memory): use less data.",
        ErrorType.MEMORY: "The code ran out of memory (a job's interpreter has at most "
        f"{settings.interpreter_max_heap_mb / 1024:g} GiB): use less data.",
    }


Progress = Callable[[float, float, str], Awaitable[None]]


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[_text(text)], is_error=True)


def _kb(size: int) -> str:
    return f"{size / 1000:.1f} kB" if size < 1_000_000 else f"{size / 1_000_000:.1f} MB"


def _output_blocks(status: dict) -> list[TextContent]:
    blocks = []
    if status.get("stdout"):
        blocks.append(_text("stdout:\n" + status["stdout"]))
    if status.get("stderr"):
        blocks.append(_text("stderr:\n" + status["stderr"]))
    return blocks


async def _value(value):
    return value


class RenderTool:
    """The tool's logic, free of MCP transport details (unit-testable with a fake gateway)."""

    def __init__(self, settings: Settings, gateway: GatewayClient):
        self.settings = settings
        self.gateway = gateway
        self.hints = hints(settings)

    async def render(
        self,
        code: str,
        *,
        files: dict[str, str] | None = None,
        variables: dict | None = None,
        width: int | None = None,
        height: int | None = None,
        scale: float | None = None,
        timeout_s: float | None = None,
        api_key: str | None = None,
        progress: Progress | None = None,
    ) -> CallToolResult:
        """``render_plotly``: the code, with its input files (name -> text) and variables."""
        body: dict = {"code": code}
        if files:
            body["files"] = {name: {"text": text} for name, text in files.items()}
        if variables:
            body["variables"] = variables
        sizes = {"width": width, "height": height, "timeout_s": timeout_s, "scale": scale}
        return await self._run(body, sizes, api_key, progress)

    async def render_figure(
        self,
        figure: dict | list,
        *,
        width: int | None = None,
        height: int | None = None,
        scale: float | None = None,
        api_key: str | None = None,
        progress: Progress | None = None,
    ) -> CallToolResult:
        """``render_figure``: a figure's JSON (or a list of them), drawn with no Python."""
        return await self._run(
            {"figure": figure}, {"width": width, "height": height, "scale": scale}, api_key, progress
        )

    async def _run(self, body: dict, options: dict, api_key: str | None, progress: Progress | None) -> CallToolResult:
        started = time.monotonic()
        body = {**body, "formats": list(FORMATS)}
        body.update({name: value for name, value in options.items() if value is not None})
        timeout_s = options.get("timeout_s")
        notes: list[str] = []
        try:
            accepted = await self.gateway.submit(body, api_key)
            job_id = accepted["job_id"]
            with structlog.contextvars.bound_contextvars(job_id=job_id):
                log.info(
                    "job submitted",
                    code_bytes=len(body.get("code", "").encode()),
                    files=len(body.get("files") or {}),
                    figure="figure" in body,
                )
                wait_s = (timeout_s or self.settings.default_timeout_s) + self.settings.mcp_wait_margin_s

                async def on_status(status: dict) -> None:
                    if progress is not None:
                        elapsed = time.monotonic() - started
                        await progress(elapsed, wait_s, f"job {job_id} {status.get('status')}")

                status = await self.gateway.wait(job_id, api_key, wait_s, on_status)
                result = await self._answer(status, accepted, api_key, notes, wait_s, "figure" in body)
                log.info(
                    "tool answered",
                    status=status.get("status"),
                    figures=len(status.get("figures") or []),
                    is_error=result.is_error,
                    seconds=round(time.monotonic() - started, 3),
                )
                return result
        except Refused as exc:
            log.info("gateway refused", status=exc.status, error=exc.message)
            return _error(self._refusal_text(exc))
        except Busy as exc:
            log.warning("gateway busy after retries", status=exc.status, retry_after_s=exc.retry_after)
            what = "rate limiting this caller" if exc.status == 429 else "not taking jobs right now"
            return _error(
                f"plotfarm is busy ({exc.status}: {what}; {exc.message}). It was retried "
                f"{self.settings.mcp_busy_retries} time(s). Try again in about {max(1, round(exc.retry_after))} s."
            )
        except Unreachable as exc:
            log.warning("gateway unreachable", error=exc.message)
            return _error(f"plotfarm is unavailable: {exc.message}. Try again later.")
        except GatewayError as exc:
            log.warning("gateway error", error=exc.message)
            return _error(f"plotfarm failed to answer: {exc.describe()}")

    @staticmethod
    def _refusal_text(exc: Refused) -> str:
        if exc.status == 401:
            return (
                f"plotfarm refused the request: {exc.message}. Configure the MCP client to send the plotfarm "
                "API key with its requests: HTTP header `Authorization: Bearer <key>`."
            )
        if exc.status == 404:
            return f"plotfarm lost track of the job: {exc.message}."
        return f"plotfarm refused the job ({exc.status}): {exc.describe()}"

    async def _answer(
        self, status: dict, accepted: dict, api_key: str | None, notes: list[str], wait_s: float, figure_job: bool
    ) -> CallToolResult:
        job_id = status.get("job_id") or accepted["job_id"]
        viewer = status.get("viewer_url") or accepted.get("viewer_url")
        state = status.get("status")
        if state not in FINAL_STATUSES:
            return _error(
                f"job {job_id} is still {state} after {wait_s:.0f} s (plotfarm is busy, or the job is slow). "
                f"Its result will appear at {accepted.get('status_url')} and {viewer}; calling the tool "
                "again starts a new job."
            )
        if state == "failed":
            return self._failure(status, viewer, figure_job)
        content, lines = await self._figures(status, api_key, notes)
        content += _output_blocks(status)
        content.append(_text(self._summary(status, viewer, lines, notes)))
        return CallToolResult(content=content)

    def _failure(self, status: dict, viewer: str | None, figure_job: bool) -> CallToolResult:
        error = status.get("error") or {}
        kind, message = error.get("type") or "Error", error.get("message") or ""
        text = f"{'The figure could not be drawn' if figure_job else 'The code failed'}: {kind}: {message}"
        if error.get("traceback"):
            text += "\n\n" + error["traceback"].rstrip("\n")
        if hint := self.hints.get(kind):
            text += "\n\n" + hint
        blocks = [_text(text), *_output_blocks(status)]
        blocks.append(_text(f"job {status.get('job_id')}: {viewer}"))
        return CallToolResult(content=blocks, is_error=True)

    async def _figures(self, status: dict, api_key: str | None, notes: list[str]) -> tuple[list, list[str]]:
        job_id = status["job_id"]
        figures = sorted(status.get("figures") or [], key=lambda f: f.get("index", 0))

        async def one(figure: dict) -> tuple[bytes | None, str | None]:
            n = figure.get("index", 0)
            files = figure.get("files") or {}
            png_url = (files.get("png") or {}).get("url")
            svg_url = (files.get("svg") or {}).get("url") or f"/api/jobs/{job_id}/figures/{n}.svg"
            inline_svg = figure.get("svg")  # ?include=svg put it in the status already
            png, svg = await asyncio.gather(
                self.gateway.fetch(png_url, api_key) if png_url else _value(None),
                _value(inline_svg.encode()) if inline_svg else self.gateway.fetch(svg_url, api_key),
            )
            return png, svg.decode("utf-8") if svg is not None else None

        fetched = await asyncio.gather(*(one(f) for f in figures))
        content: list = []
        lines: list[str] = []
        missing_png = False
        for figure, (png, svg) in zip(figures, fetched, strict=True):
            n = figure.get("index", 0)
            uri = f"plotfarm://jobs/{job_id}/figures/{n}.svg"
            parts = []
            if png is not None:
                content.append(
                    ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png")
                )
                parts.append(f"PNG {_kb(len(png))}")
            else:
                missing_png = True
            if svg is not None:
                content.append(
                    EmbeddedResource(
                        type="resource",
                        resource=TextResourceContents(uri=uri, mime_type="image/svg+xml", text=svg),
                    )
                )
                parts.append(f"SVG {_kb(len(svg.encode()))} ({uri})")
            lines.append(f"figure {n}: " + (", ".join(parts) or "no file could be fetched"))
        if missing_png:
            notes.append("No PNG came back for some figures; their SVG is attached.")
        return content, lines

    @staticmethod
    def _summary(status: dict, viewer: str | None, lines: list[str], notes: list[str]) -> str:
        t = status.get("timings") or {}
        count = len(lines)
        head = f"plotfarm rendered {count} figure{'s' if count != 1 else ''} (job {status['job_id']}"
        if t:
            head += f", total {t.get('total_ms', 0):.0f} ms: run {t.get('run_ms', 0):.0f} ms"
        head += ")."
        text = [head, *lines]
        if status.get("packages"):
            text.append("packages loaded: " + ", ".join(map(str, status["packages"])))
        text += [f"warning: {warning}" for warning in status.get("warnings") or []]
        text += notes
        text.append(f"View in the browser: {viewer}")
        return "\n".join(text)
