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
from dataclasses import dataclass, field

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from services.renderer.browser import HeadlessBrowser
from shared.messages import RenderJob
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Beyond the job's own limit and the interrupt grace: time to wait for a
# fresh interpreter and to turn the figures into SVG before the page counts as hung.
PAGE_ALLOWANCE_S = 15.0


class InterpreterCrashed(Exception):
    """The page or the browser died under a job: not the job's verdict, retry it."""


@dataclass
class PageOutput:
    """What the page answered for one job (see renderer.mjs ``render``)."""

    figures: list[str]
    stdout: str
    stderr: str
    error: dict | None
    exec_ms: float
    svg_ms: float
    wait_ms: float = 0.0
    load_ms: float = 0.0
    packages: list[str] = field(default_factory=list)
    timed_out: bool = False
    fresh_interpreter: bool = True


class RendererPage:
    def __init__(self, browser: HeadlessBrowser, settings: Settings):
        self.browser = browser
        self.settings = settings
        self.page: Page | None = None
        self.ready = asyncio.Event()
        self.start_timings: dict = {}
        self._restart_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    @property
    def pool_options(self) -> dict:
        return {
            "isolation": self.settings.isolation,
            "spares": self.settings.spare_interpreters or self.settings.renderer_concurrency,
            "parallelBoots": self.settings.parallel_boots,
            "heapLimitBytes": self.settings.interpreter_heap_limit_mb * 1024 * 1024,
        }

    async def start(self) -> None:
        """Start Chromium and the pool; returns once a fresh interpreter is ready."""
        await self.browser.start()
        await self._open_page()
        self._spawn(self._watch_browser())

    async def _open_page(self) -> None:
        started = time.perf_counter()
        page = await self.browser.new_page()
        page.on("crash", lambda _page: self._on_page_lost("crashed"))
        timings = await asyncio.wait_for(
            page.evaluate("options => plotfarm.start(options)", self.pool_options), self.settings.boot_timeout_s
        )
        self.page = page
        self.start_timings = {k: round(v) if isinstance(v, float) else v for k, v in timings.items()}
        self.start_timings["page_start_ms"] = round((time.perf_counter() - started) * 1000)
        self.ready.set()
        log.info("interpreter pool ready", **self.pool_options, **self.start_timings)

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
            for attempt in range(1, 1_000_000):
                await self.browser.running.wait()
                try:
                    await self._open_page()
                    return
                except Exception as exc:  # noqa: BLE001  (any failure: wait, try again)
                    log.warning("renderer page failed to start", error=str(exc)[:300], attempt=attempt)
                    await asyncio.sleep(min(30, 2**attempt))

    async def _watch_browser(self) -> None:
        """Restart Chromium when it dies, then the page."""
        while True:
            await self.browser.disconnected.wait()
            self.ready.clear()
            log.error("chromium died; restarting it")
            await self.browser.restart()
            self._spawn(self._restart_page())

    async def render(self, job: RenderJob) -> PageOutput:
        await self.ready.wait()
        page = self.page
        payload = {
            "code": job.code,
            "width": job.width,
            "height": job.height,
            "timeoutMs": job.timeout_s * 1000,
            "graceMs": self.settings.interrupt_grace_s * 1000,
            "limits": self.settings.job_limits(),
            "tenant": job.tenant,
        }
        deadline = job.timeout_s + self.settings.interrupt_grace_s + PAGE_ALLOWANCE_S
        try:
            out = await asyncio.wait_for(page.evaluate("job => plotfarm.render(job)", payload), deadline)
        except TimeoutError:
            # The page's main thread stopped answering: only replacing it helps.
            self._on_page_lost("hung")
            return PageOutput(
                [],
                "",
                "",
                {
                    "type": "TimeoutError",
                    "message": f"the job hung the renderer page for {deadline:.0f} s; the page was replaced",
                },
                exec_ms=deadline * 1000,
                svg_ms=0,
                timed_out=True,
            )
        except PlaywrightError as exc:
            if page is self.page and self.ready.is_set():
                self._on_page_lost(str(exc).splitlines()[0][:200])
            raise InterpreterCrashed(str(exc).splitlines()[0]) from exc
        timings = out["timings"]
        return PageOutput(
            figures=out["figures"],
            stdout=out["stdout"],
            stderr=out["stderr"],
            error=out["error"],
            exec_ms=timings["exec_ms"],
            svg_ms=timings["svg_ms"],
            wait_ms=timings["wait_ms"],
            load_ms=timings["load_ms"],
            packages=out["packages"],
            timed_out=out["timedOut"],
            fresh_interpreter=out["interpreter"]["fresh"],
        )

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
