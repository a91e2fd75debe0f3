"""The renderer's page: the interpreter pool inside headless Chromium, kept alive.

``web/renderer/renderer.mjs`` runs the pool (a template snapshot, fresh
interpreters restored from it, reuse according to the isolation setting).
This class starts that page, hands it jobs, and replaces it when something
goes wrong underneath:

* a job that hangs the page's main thread past its deadline gets the page
  closed (the job fails with a timeout; jobs that were sharing the page are
  handed back for another try);
* a crashed page, or a Chromium that died, is replaced; jobs in flight are
  handed back (:class:`InterpreterCrashed`), and RabbitMQ's delivery limit
  stops a job that crashes it every time.
"""

import asyncio
import contextlib
import time

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from pydantic import ValidationError

from services.renderer.browser import HeadlessBrowser
from services.renderer.fonts import installed_fonts
from services.renderer.stored_template import StoredTemplate
from shared.messages import JobError, RenderJob
from shared.page_contract import OutputLimits, PageResult, PageTimings
from shared.retry import Backoff, retry
from shared.settings import Settings

log = structlog.get_logger(__name__)


class InterpreterCrashed(Exception):
    """The page or the browser died under a job: not the job's verdict, retry it."""


def failed(error_type: str, message: str, *, run_ms: float = 0.0) -> PageResult:
    """A PageResult for a job the page could not answer for itself."""
    return PageResult(
        figures=[],
        stdout="",
        stderr="",
        error=JobError(type=error_type, message=message),
        packages=[],
        warnings=[],
        timings=PageTimings(wait_ms=0, load_ms=0, run_ms=run_ms, svg_ms=0),
    )


class RendererPage:
    def __init__(self, browser: HeadlessBrowser, settings: Settings):
        self.browser = browser
        self.stored = StoredTemplate(settings)
        self.settings = settings
        self.page: Page | None = None
        self.ready = asyncio.Event()
        self.fonts: dict = {"installed": [], "fallback": "sans-serif"}
        self.start_timings: dict = {}
        self._restart_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    @property
    def pool_options(self) -> dict:
        """The pool's configuration, all of it from Settings (renderer.mjs has no defaults of its own)."""
        return {
            "isolation": self.settings.isolation,
            "spares": self.settings.spare_interpreters or self.settings.renderer_concurrency,
            "parallelBoots": self.settings.parallel_boots,
            "heapLimitBytes": self.settings.interpreter_heap_limit_mb * 1024 * 1024,
            "fonts": self.fonts,
        }

    async def start(self) -> None:
        """Start Chromium and the pool; returns once a fresh interpreter is ready."""
        self.fonts = await installed_fonts()
        await self.stored.prepare()
        finding = asyncio.ensure_future(self.stored.find())  # its checksum is read while Chromium starts
        try:
            await self.browser.start()
            stored = await finding
        finally:
            finding.cancel()
        await self._open_page(stored)
        self._spawn(self._watch_browser())

    async def _open_page(self, stored: str | None) -> None:
        """Open the page and start its pool, from the stored template ``stored`` if given."""
        started = time.perf_counter()
        page = await self.browser.new_page(stored)
        page.on("crash", lambda _page: self._on_page_lost("crashed"))
        timings = await asyncio.wait_for(
            page.evaluate("options => plotfarm.start(options)", self.pool_options), self.settings.boot_timeout_s
        )
        if "stored_template_problem" in timings:
            log.warning(
                "the stored template did not restore; made a new one", problem=timings["stored_template_problem"]
            )
        if timings["template_source"] == "made":
            # Before this page's first job: what is stored never saw a job's code.
            saving = time.perf_counter()
            await self.stored.save(page)
            timings["template_stored_ms"] = (time.perf_counter() - saving) * 1000
        self.page = page
        self.start_timings = {k: round(v) if isinstance(v, float) else v for k, v in timings.items()}
        self.start_timings["page_start_ms"] = round((time.perf_counter() - started) * 1000)
        self.ready.set()
        options = {**self.pool_options, "fonts": len(self.fonts["installed"])}
        log.info("interpreter pool ready", **options, **self.start_timings)

    def _on_page_lost(self, why: str) -> None:
        log.error("renderer page lost; replacing it", reason=why)
        self.ready.clear()
        self._spawn(self._restart_page())

    async def _restart_page(self) -> None:
        async with self._restart_lock:
            if self.ready.is_set():
                return
            old, self.page = self.page, None
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.close()

            async def open_when_the_browser_runs() -> None:
                await self.browser.running.wait()
                await self._open_page(await self.stored.find())

            # Without a page the renderer can do nothing: keep trying, saying why each time.
            await retry(
                open_when_the_browser_runs, what="open the renderer page", attempts=None, backoff=Backoff(first_s=2)
            )

    async def _watch_browser(self) -> None:
        """Restart Chromium when it dies, then the page."""
        while True:
            await self.browser.disconnected.wait()
            self.ready.clear()
            log.error("chromium died; restarting it")
            await self.browser.restart()
            self._spawn(self._restart_page())

    async def render(self, job: RenderJob) -> PageResult:
        """Run one job on the page; its answer, checked against the contract (shared/page_contract.py)."""
        await self.ready.wait()
        page = self.page
        payload = {
            "code": job.code,
            "width": job.width,
            "height": job.height,
            "formats": job.formats,
            "scale": job.scale,
            "timeoutMs": job.timeout_s * 1000,
            "graceMs": self.settings.interrupt_grace_s * 1000,
            "limits": OutputLimits.from_settings(self.settings).model_dump(),
            "tenant": job.tenant,
        }
        deadline = job.timeout_s + self.settings.interrupt_grace_s + self.settings.page_allowance_s
        try:
            answer = await asyncio.wait_for(page.evaluate("job => plotfarm.render(job)", payload), deadline)
        except TimeoutError:
            # The page's main thread stopped answering: only replacing it helps.
            self._on_page_lost("hung")
            message = f"the job hung the renderer page for {deadline:.0f} s; the page was replaced"
            return failed("TimeoutError", message, run_ms=deadline * 1000)
        except PlaywrightError as exc:
            if page is self.page and self.ready.is_set():
                self._on_page_lost(str(exc).splitlines()[0][:200])
            raise InterpreterCrashed(str(exc).splitlines()[0]) from exc
        try:
            return PageResult.model_validate(answer)
        except ValidationError as exc:
            # A bug on our side, never the job's doing: fail it loudly rather than retry it.
            log.error("the renderer page answered outside its contract", error=str(exc)[:1000])
            return failed("RendererError", f"the renderer page answered outside its contract: {exc}")

    async def stats(self) -> dict:
        if not self.ready.is_set():
            return {}
        return await self.page.evaluate("plotfarm.stats()")

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.browser.stop()
