"""Warm Pyodide interpreters: one per page of the headless browser, kept in a pool.

An :class:`Interpreter` is a page running ``web/renderer/renderer.mjs`` with
one Pyodide worker that has plotly imported. The :class:`InterpreterPool`
keeps ``size`` of them alive: it hands out an idle one per job, takes it back
afterwards, and replaces any that broke (a worker terminated after a timeout,
a hung or crashed page, or a whole browser that died) in the background, so
the renderer keeps serving while a replacement boots.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from services.renderer.browser import HeadlessBrowser
from shared.messages import RenderJob
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Time a page may take, beyond the job's own limit and the interrupt grace,
# to turn the figures into SVG before it counts as hung.
SVG_ALLOWANCE_S = 10.0


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
    timed_out: bool = False
    hung: bool = False


@dataclass
class Interpreter:
    browser: HeadlessBrowser
    settings: Settings
    page: Page | None = None
    healthy: bool = False
    needs_boot: bool = True
    jobs_run: int = 0
    boot_timings: dict = field(default_factory=dict)

    async def boot(self) -> None:
        """Open the page if needed and start a fresh worker in it."""
        started = time.perf_counter()
        if self.page is None or self.page.is_closed():
            self.page = await asyncio.wait_for(self.browser.new_page(), self.settings.boot_timeout_s)
        self.boot_timings = await asyncio.wait_for(self.page.evaluate("plotfarm.boot()"), self.settings.boot_timeout_s)
        self.boot_timings["wall_ms"] = round((time.perf_counter() - started) * 1000, 1)
        self.healthy, self.needs_boot, self.jobs_run = True, False, 0
        log.info("interpreter ready", **{k: round(v) if isinstance(v, float) else v for k, v in self.boot_timings.items()})

    async def render(self, job: RenderJob) -> PageOutput:
        payload = {
            "code": job.code,
            "width": job.width,
            "height": job.height,
            "timeoutMs": job.timeout_s * 1000,
            "graceMs": self.settings.interrupt_grace_s * 1000,
            "limits": self.settings.job_limits(),
        }
        deadline = job.timeout_s + self.settings.interrupt_grace_s + SVG_ALLOWANCE_S
        self.jobs_run += 1
        try:
            out = await asyncio.wait_for(self.page.evaluate("job => plotfarm.render(job)", payload), deadline)
        except (TimeoutError, asyncio.TimeoutError):
            # The page's main thread stopped answering: only closing it helps.
            self.healthy = False
            await self.close()
            return PageOutput(
                [], "", "", {"type": "TimeoutError", "message": f"the job hung its page for {deadline:.0f} s; the page was closed"},
                exec_ms=deadline * 1000, svg_ms=0, timed_out=True, hung=True,
            )
        except PlaywrightError as exc:
            self.healthy = False
            raise InterpreterCrashed(str(exc).splitlines()[0]) from exc
        if out["needsBoot"]:
            self.needs_boot = True
        return PageOutput(
            figures=out["figures"],
            stdout=out["stdout"],
            stderr=out["stderr"],
            error=out["error"],
            exec_ms=out["timings"]["exec_ms"],
            svg_ms=out["timings"]["svg_ms"],
            timed_out=out["timedOut"],
        )

    async def close(self) -> None:
        self.healthy = False
        if self.page is not None:
            with contextlib.suppress(Exception):
                await self.page.close()
            self.page = None


class InterpreterPool:
    def __init__(self, browser: HeadlessBrowser, settings: Settings, size: int):
        self.browser = browser
        self.settings = settings
        self.size = size
        self.idle: asyncio.Queue[Interpreter] = asyncio.Queue()
        self.browser_ready = asyncio.Event()
        self.busy = 0
        self._tasks: set[asyncio.Task] = set()
        # Booting is CPU-bound; one at a time gets the first interpreter warm
        # soonest and leaves a core for jobs while the others boot.
        self._booting = asyncio.Semaphore(1)

    @property
    def ready(self) -> bool:
        return self.browser_ready.is_set() and (self.idle.qsize() > 0 or self.busy > 0)

    async def start(self) -> None:
        """Start the browser and boot every interpreter; returns once one is warm."""
        await self.browser.start()
        self.browser_ready.set()
        self._spawn(self._watch_browser())
        for _ in range(self.size):
            self._spawn(self._provide(None))
        while self.idle.empty():
            await asyncio.sleep(0.05)

    @contextlib.asynccontextmanager
    async def interpreter(self) -> AsyncIterator[Interpreter]:
        interpreter = await self.idle.get()
        self.busy += 1
        try:
            yield interpreter
        finally:
            self.busy -= 1
            self._give_back(interpreter)

    def _give_back(self, interpreter: Interpreter) -> None:
        if interpreter.healthy and not interpreter.needs_boot:
            self.idle.put_nowait(interpreter)
        elif interpreter.healthy:
            self._spawn(self._provide(interpreter))  # same page, a fresh worker
        else:
            self._spawn(self._provide(None, discard=interpreter))

    async def _provide(self, reuse: Interpreter | None, discard: Interpreter | None = None) -> None:
        """Put one more warm interpreter into the idle queue, retrying until it boots."""
        if discard is not None:
            await discard.close()
        attempt = 0
        while True:
            await self.browser_ready.wait()
            interpreter = reuse or Interpreter(self.browser, self.settings)
            reuse = None
            try:
                async with self._booting:
                    await interpreter.boot()
                self.idle.put_nowait(interpreter)
                return
            except Exception as exc:  # noqa: BLE001  (any boot failure: close it and try anew)
                attempt += 1
                log.warning("interpreter boot failed", error=str(exc)[:300], attempt=attempt)
                await interpreter.close()
                await asyncio.sleep(min(30, 2**attempt))

    async def _watch_browser(self) -> None:
        """Restart Chromium when it dies; every interpreter it held is replaced."""
        while True:
            await self.browser.disconnected.wait()
            self.browser_ready.clear()
            lost = 0
            while not self.idle.empty():
                await self.idle.get_nowait().close()
                lost += 1
            log.error("chromium died; restarting it", idle_interpreters_lost=lost, busy=self.busy)
            await self.browser.close()
            for attempt in range(1, 1_000_000):
                try:
                    await self.browser.start()
                    break
                except Exception as exc:  # noqa: BLE001
                    log.error("chromium failed to start", error=str(exc)[:300], attempt=attempt)
                    await asyncio.sleep(min(30, 2**attempt))
            self.browser_ready.set()
            for _ in range(lost):
                self._spawn(self._provide(None))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.browser.stop()
