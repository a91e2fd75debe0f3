"""One renderer page: interpreters in a headless Chromium page that runs one job at a time.

``web/renderer/renderer.mjs`` runs the interpreters (restored from a
snapshot snapshot, reused or not according to the isolation setting). This
class opens that page and runs a job on it in its two steps, each under a
deadline kept here, out of the job's reach:

1. ``plotfarm.run``: the code runs in a worker; the page interrupts and then
   terminates it at the job's limit, so this step ends by itself unless the
   page's own thread hangs (deadline: the job's limit, the grace,
   ``page_allowance_s`` to get an interpreter, and time to carry the job's
   input files there, :func:`input_transfer_s`);
2. ``plotfarm.exportFigures``: plotly.js draws the figures on the page's
   thread, which nothing can interrupt; past ``export_timeout_s`` the job
   fails with ``TimeoutError``.

A page that passes a deadline, crashes, or answers out of turn is closed and
replaced by its :class:`~services.renderer.pages.PagePool`; it held no other
job, so only the job that did it is affected. A crash is not the job's
verdict (:class:`InterpreterCrashed`: the job is handed back, and RabbitMQ's
delivery limit stops a job that crashes pages every time).

A figure job (figures in, no code) takes one step instead:
``plotfarm.drawFigures`` bounds and draws its figures, no interpreter involved.
A PDF is printed afterwards from each figure's sanitised SVG, through this
page's DevTools session (:meth:`RendererPage._with_pdfs`).

Whatever the page answers is bounded once more here
(:func:`shared.page_contract.bounded_answer`).
"""

import asyncio
import json
import time
from collections.abc import Callable

import structlog
from playwright.async_api import CDPSession, Page
from playwright.async_api import Error as PlaywrightError

from services.renderer.browser import HeadlessBrowser
from services.renderer.sanitize import UnsafeSvg, sanitize_svg
from shared.messages import JobError, RenderJob
from shared.page_contract import OutputLimits, PageResult, PoolStats, bounded_answer, failed_answer
from shared.settings import Settings
from shared.vocabulary import ErrorType, Format

log = structlog.get_logger(__name__)

# Closing a page, or emptying its storage, waits this long at most: DevTools calls for a page
# whose process crashed or hangs may never be answered.
CLOSE_TIMEOUT_S = 10.0


# What Page.printToPDF measures paper in: CSS pixels are 1/96 inch.
CSS_PIXELS_PER_INCH = 96


def figure_job_output(figures: list[dict]) -> str:
    """A figure job's figures as the one JSON document an interpreter would answer (a RunOutput)."""
    return json.dumps({"figures": figures, "stdout": "", "stderr": "", "error": None, "warnings": []})


def failed_as(answer: PageResult, error_type: str, message: str) -> PageResult:
    """``answer`` failed with this error: no figures, no warnings, its texts kept."""
    return answer.model_copy(
        update={"figures": [], "warnings": [], "error": JobError(type=error_type, message=message)}
    )


class NotPrintable(Exception):
    """The page could not show a figure's SVG to print it (the figure's fault, not the page's)."""


# Input files reach the page inside page.evaluate's argument, through Playwright's driver and
# DevTools as JSON: measured here 4.5-9.5 s for 27 MB of base64 (20 MB of files, the default
# limit) on two busy cores. The run step's deadline grows by this much per MB of base64, so a
# big upload on a busy machine is not taken for a hung page.
INPUT_TRANSFER_S_PER_MB = 1.0


def input_transfer_s(job: RenderJob) -> float:
    """The extra time the run step may take to carry ``job``'s input files to its page."""
    base64_bytes = sum(len(name) + len(data) for name, data in job.files.items())
    return INPUT_TRANSFER_S_PER_MB * base64_bytes / 1e6


class InterpreterCrashed(Exception):
    """The page or the browser died under a job: not the job's verdict, retry it."""


class RendererPage:
    """One page of the pool; ``on_lost(page, why)`` is told when it must be replaced."""

    def __init__(
        self,
        browser: HeadlessBrowser,
        settings: Settings,
        number: int,
        *,
        spares: int,
        parallel_restores: int,
        on_lost: Callable[["RendererPage", str], None],
    ):
        self.browser = browser
        self.settings = settings
        self.number = number
        self.spares = spares
        self.parallel_restores = parallel_restores
        self.on_lost = on_lost
        self.page: Page | None = None
        self.cdp: CDPSession | None = None
        self.ready = asyncio.Event()
        self.start_timings: dict = {}
        self.limits = OutputLimits.from_settings(settings)

    def pool_options(self, fonts: dict) -> dict:
        """The page's configuration, all of it from Settings (renderer.mjs has no defaults of its own)."""
        return {
            "isolation": self.settings.isolation,
            "spares": self.spares,
            "parallelRestores": self.parallel_restores,
            "heapLimitBytes": self.settings.interpreter_heap_limit_mb * 1024 * 1024,
            "fonts": fonts,
        }

    async def open(self, stored: str | None, fonts: dict) -> dict:
        """Open the page and start its interpreters (from the stored snapshot ``stored`` if given); its timings.

        The page takes jobs once its pool sets ``ready``."""
        started = time.perf_counter()
        page = await self.browser.new_page(stored, max_heap_bytes=self.settings.interpreter_max_heap_mb << 20)
        page.on("crash", lambda _page: self._lost(page, "crashed"))
        try:
            timings = await asyncio.wait_for(
                page.evaluate("options => plotfarm.start(options)", self.pool_options(fonts)),
                self.settings.start_timeout_s,
            )
            self.cdp = await page.context.new_cdp_session(page)
            await self.clear_storage()
        except BaseException:
            await self._close(page)
            raise
        self.page = page
        self.start_timings = {k: round(v) if isinstance(v, float) else v for k, v in timings.items()}
        self.start_timings["page_start_ms"] = round((time.perf_counter() - started) * 1000)
        return timings

    async def render(self, job: RenderJob) -> PageResult:
        """Run one job on this page: its answer, bounded (shared/page_contract.py)."""
        page = self.page
        if page is None or not self.ready.is_set():
            raise InterpreterCrashed("the renderer page is being replaced")
        finished = False
        try:
            answer = await self._render(page, job)
            finished = True
            return answer
        finally:
            if not finished:  # cancelled, or a bug of ours: the page's state is unknown now
                self._lost(page, "a job's run on it was interrupted")

    async def _render(self, page: Page, job: RenderJob) -> PageResult:
        answer = await (self._draw(page, job) if job.figures is not None else self._run(page, job))
        if Format.PDF in job.formats and answer.error is None and answer.figures:
            answer = await self._with_pdfs(page, job, answer)
        return answer

    async def _draw(self, page: Page, job: RenderJob) -> PageResult:
        """A figure job: one call, no interpreter. The figures travel as one JSON document shaped like a
        RunOutput, which the page bounds before parsing it, as it bounds an interpreter's answer."""
        output = await asyncio.to_thread(figure_job_output, job.figures)
        draw = {
            "jobId": job.job_id,
            "output": output,
            "width": job.width,
            "height": job.height,
            "formats": job.formats,
            "scale": job.scale,
            "limits": self.limits.model_dump(),
        }
        answer = await self._export(page, "job => plotfarm.drawFigures(job)", draw)
        if isinstance(answer, PageResult):
            return answer
        return await asyncio.to_thread(bounded_answer, answer, self.limits)

    async def _export(self, page: Page, call: str, arg: dict):
        """The page's answer to ``call``, or a failed PageResult when it hung (the page is then replaced)."""
        settings = self.settings
        try:
            return await asyncio.wait_for(page.evaluate(call, arg), settings.export_timeout_s)
        except TimeoutError:
            self._lost(page, "hung while drawing a job's figures")
            message = (
                f"drawing the job's figures took longer than {settings.export_timeout_s:g} s "
                "(PLOTFARM_EXPORT_TIMEOUT_S); smaller figures draw faster: fewer points, or scattergl for many"
            )
            return failed_answer(ErrorType.TIMEOUT, message)
        except PlaywrightError as exc:
            raise self._crashed(page, exc) from exc

    async def _with_pdfs(self, page: Page, job: RenderJob, answer: PageResult) -> PageResult:
        """``answer`` with each figure's PDF, printed by Chromium from its sanitised SVG.

        The SVG is shown alone on the page as an image of its own size, and the page is
        printed on paper of that size with no margins (CDP ``Page.printToPDF``): text
        stays text, paths stay paths. The page is put back after each figure. The SVG
        stays in the result only when the job asked for it too. Printing counts as drawing
        (``svg_ms``)."""
        started = time.perf_counter()
        figures = []
        for n, figure in enumerate(answer.figures, 1):
            try:
                svg = await asyncio.to_thread(sanitize_svg, figure.svg or "")
            except UnsafeSvg as exc:
                return failed_as(answer, ErrorType.UNSAFE_SVG, str(exc))
            try:
                pdf = await asyncio.wait_for(self._print(page, svg), self.settings.export_timeout_s)
            except NotPrintable as exc:
                return failed_as(answer, ErrorType.RENDER_ERROR, f"figure {n} could not be printed to PDF: {exc}")
            except TimeoutError:
                self._lost(page, "hung while printing a figure to PDF")
                return failed_as(answer, ErrorType.TIMEOUT, f"printing figure {n} to PDF took too long")
            except PlaywrightError as exc:
                raise self._crashed(page, exc) from exc
            size = len(pdf) * 3 // 4
            if size > self.limits.max_pdf_bytes:
                message = f"figure {n} is {size} bytes of PDF; the limit is {self.limits.max_pdf_bytes}"
                return failed_as(answer, ErrorType.OUTPUT_LIMIT_EXCEEDED, message)
            figures.append(figure.model_copy(update={"pdf": pdf, "svg": svg if Format.SVG in job.formats else None}))
        timings = answer.timings.model_copy()
        timings.svg_ms += (time.perf_counter() - started) * 1000
        return answer.model_copy(update={"figures": figures, "timings": timings})

    async def _print(self, page: Page, svg: str) -> str:
        """One SVG printed to a one-page PDF the SVG's size: base64."""
        size = await page.evaluate("job => plotfarm.printSvg(job)", {"svg": svg})
        if "error" in size:
            raise NotPrintable(str(size["error"])[:500])
        try:
            printed = await self.cdp.send(
                "Page.printToPDF",
                {
                    "paperWidth": size["width"] / CSS_PIXELS_PER_INCH,
                    "paperHeight": size["height"] / CSS_PIXELS_PER_INCH,
                    "marginTop": 0,
                    "marginBottom": 0,
                    "marginLeft": 0,
                    "marginRight": 0,
                    "printBackground": True,
                    "preferCSSPageSize": True,
                    "pageRanges": "1",
                },
            )
        finally:
            await page.evaluate("plotfarm.endPrint()")
        return printed["data"]

    async def _run(self, page: Page, job: RenderJob) -> PageResult:
        settings = self.settings
        run = {
            "jobId": job.job_id,
            "code": job.code,
            "timeoutMs": job.timeout_s * 1000,
            "graceMs": settings.interrupt_grace_s * 1000,
            "limits": self.limits.model_dump(),
            "tenant": job.tenant,
            # Input files as the job message carries them (base64: the page decodes them), and the
            # code's globals; both for this job's interpreter only (interpreter-worker.mjs).
            "files": job.files,
            "variables": job.variables,
        }
        run_deadline = job.timeout_s + settings.interrupt_grace_s + settings.page_allowance_s + input_transfer_s(job)
        draw = {
            "jobId": job.job_id,
            "width": job.width,
            "height": job.height,
            "formats": job.formats,
            "scale": job.scale,
        }
        try:
            await asyncio.wait_for(page.evaluate("job => plotfarm.run(job)", run), run_deadline)
        except TimeoutError:
            # The page's thread stopped answering: only replacing the page helps.
            self._lost(page, "hung while running a job")
            message = f"the job hung its renderer page for {run_deadline:.0f} s; the page was replaced"
            return failed_answer(ErrorType.TIMEOUT, message, run_ms=run_deadline * 1000)
        except PlaywrightError as exc:
            raise self._crashed(page, exc) from exc
        answer = await self._export(page, "job => plotfarm.exportFigures(job)", draw)
        if isinstance(answer, PageResult):
            return answer
        # Sizes and strings are checked in a thread: an answer may be tens of megabytes.
        return await asyncio.to_thread(bounded_answer, answer, self.limits)

    def _crashed(self, page: Page, exc: PlaywrightError) -> InterpreterCrashed:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._lost(page, first_line[:200])
        return InterpreterCrashed(first_line)

    def replace_because(self, why: str) -> None:
        """This page must be replaced (the pool is told once)."""
        self._lost(self.page, why)

    def _lost(self, page: Page, why: str) -> None:
        """Tell the pool once that ``page`` (if it is still this slot's page) must be replaced."""
        if page is self.page and self.ready.is_set():
            self.ready.clear()
            self.on_lost(self, why)

    async def clear_storage(self) -> None:
        """Empty every kind of storage of the assets' origin (the profile refuses it all anyway: launcher.py)."""
        await asyncio.wait_for(
            self.cdp.send("Storage.clearDataForOrigin", {"origin": self.browser.asset_origin, "storageTypes": "all"}),
            CLOSE_TIMEOUT_S,  # a session whose page crashed never answers
        )

    async def stats(self) -> dict:
        """The page's pool numbers, checked against their contract (shared/page_contract.py PoolStats)."""
        if not self.ready.is_set():
            return {}
        return PoolStats.model_validate(await self.page.evaluate("plotfarm.stats()")).model_dump()

    async def close(self) -> None:
        page, self.page = self.page, None
        self.ready.clear()
        if page is not None:
            await self._close(page)

    async def _close(self, page: Page) -> None:
        """Close ``page``, crashed or hung as it may be; its DevTools session goes with it."""
        self.cdp = None
        try:
            await asyncio.wait_for(page.close(), CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001  (already gone, or its process stuck: Chromium ends it)
            pass
