"""The renderer's pages: one headless Chromium, one page per job in flight, kept alive.

Why a page per job rather than one page for all: a page draws figures on its
one thread, which nothing can interrupt. With jobs sharing a page, one heavy
figure stalled every other job on it, and when the page had to be replaced
they were all handed back. Here a job has its page to itself from its run to
its last figure (``renderer_concurrency`` pages, each in a renderer process of
its own), so a slow figure fails its own job and nothing else notices. It also
scopes the page-side state a job can touch (MathJax, see
web/runtime/mathjax-scope.mjs) and gives figures as many drawing threads as
jobs in flight.

After each job the page's origin storage is emptied (Chromium's profile
refuses every kind of it to begin with: launcher.py) before the page takes
the next job. A page that is lost (hung, crashed) is replaced on its own; if
Chromium dies, it is restarted and every page with it. The first page opens
from the stored snapshot if there is one, or makes and stores it; the others
open one after another once it is ready, from the snapshot it stored.
"""

import asyncio
import contextlib
import math
import time
from collections import deque

import structlog

from services.renderer.browser import HeadlessBrowser
from services.renderer.fonts import installed_fonts
from services.renderer.page import RendererPage
from services.renderer.stored_snapshot import StoredSnapshot
from shared.messages import RenderJob
from shared.metrics import pooled
from shared.page_contract import PageResult
from shared.retry import Backoff, retry
from shared.settings import Settings

log = structlog.get_logger(__name__)


class PagePool:
    def __init__(self, browser: HeadlessBrowser, settings: Settings):
        self.browser = browser
        self.settings = settings
        self.stored = StoredSnapshot(settings)
        self.fonts: dict = {"installed": [], "fallback": "sans-serif"}
        count = settings.renderer_concurrency
        spares = settings.spare_interpreters or count
        self.pages = [
            RendererPage(
                browser,
                settings,
                number,
                spares=math.ceil(spares / count),
                parallel_restores=max(1, settings.parallel_restores // count),
                on_lost=self._on_page_lost,
            )
            for number in range(count)
        ]
        self._idle: deque[RendererPage] = deque()
        self._changed = asyncio.Condition()
        self._replacing: set[RendererPage] = set()
        self._opened = False
        self._tasks: set[asyncio.Task] = set()

    def any_ready(self) -> bool:
        """A page can take a job (for /readyz)."""
        return any(page.ready.is_set() for page in self.pages)

    @property
    def start_timings(self) -> dict:
        return self.pages[0].start_timings

    async def start(self) -> None:
        """Start Chromium and the first page; returns once it has a fresh interpreter. The others follow."""
        self.fonts = await installed_fonts()
        await self.stored.prepare()
        finding = asyncio.ensure_future(self.stored.find())  # its checksum is read while Chromium starts
        try:
            await self.browser.start()
            stored = await finding
        finally:
            finding.cancel()
        await self._open(self.pages[0], stored)
        self._spawn(self._open_others())
        self._spawn(self._watch_browser())

    async def _open_others(self) -> None:
        """The pages after the first, one after another (together they would slow the first jobs down)."""
        for page in self.pages[1:]:
            if not page.ready.is_set() and page not in self._replacing:
                self._replacing.add(page)
                await self._replace(page)

    async def _open(self, page: RendererPage, stored: str | None) -> None:
        timings = await page.open(stored, self.fonts)
        if "stored_snapshot_problem" in timings:
            log.warning(
                "the stored snapshot did not restore; made a new one", problem=timings["stored_snapshot_problem"]
            )
        if timings["snapshot_source"] == "made":
            # Before this page's first job: what is stored never saw a job's code.
            saving = time.perf_counter()
            await self.stored.save(page.page)
            page.start_timings["snapshot_stored_ms"] = round((time.perf_counter() - saving) * 1000)
        first = not self._opened  # the first page of this renderer: from now on it takes jobs
        self._opened = True
        log.info(
            "interpreter pool ready" if first else "renderer page ready",
            page=page.number,
            isolation=self.settings.isolation,
            spares=page.spares,
            fonts=len(self.fonts["installed"]),
            **page.start_timings,
        )
        page.ready.set()
        await self._release(page)

    async def render(self, job: RenderJob) -> PageResult:
        """Run ``job`` on a page of its own; its answer (InterpreterCrashed if the page or Chromium died)."""
        page = await self._acquire()
        try:
            return await page.render(job)
        finally:
            self._spawn(self._after_job(page, ran_code=job.figures is None))

    async def _acquire(self) -> RendererPage:
        async with self._changed:
            while True:
                while self._idle and not self._idle[0].ready.is_set():
                    self._idle.popleft()  # lost while idle: it comes back through _release
                if self._idle:
                    return self._idle.popleft()
                await self._changed.wait()

    async def _release(self, page: RendererPage) -> None:
        async with self._changed:
            if page not in self._idle:
                self._idle.append(page)
            self._changed.notify()

    async def _after_job(self, page: RendererPage, *, ran_code: bool = True) -> None:
        """Empty the origin's storage, then the page may take the next job (a lost page is being replaced).

        A figure job (``ran_code`` false) ran no code that could have written any: only
        plotly.js drew its figures, so its page goes straight back (the fast path)."""
        if not page.ready.is_set():
            return
        if not ran_code:
            await self._release(page)
            return
        try:
            await page.clear_storage()
        except Exception as exc:  # noqa: BLE001  (a page that cannot be cleared takes no job)
            page.replace_because(f"its storage could not be cleared: {exc!r}"[:200])
            return
        await self._release(page)

    def _on_page_lost(self, page: RendererPage, why: str) -> None:
        log.error("renderer page lost; replacing it", page=page.number, reason=why)
        self._replace_soon(page)

    def _replace_soon(self, page: RendererPage) -> None:
        if page not in self._replacing:
            self._replacing.add(page)  # now, not when the task starts: one replacement at a time
            self._spawn(self._replace(page))

    async def _replace(self, page: RendererPage) -> None:
        """Close ``page`` and open it again; forever (a renderer without pages does nothing), saying why each time.

        The caller has put ``page`` in ``_replacing``."""
        try:
            await page.close()

            async def open_when_the_browser_runs() -> None:
                await self.browser.running.wait()
                await self._open(page, await self.stored.find())

            await retry(
                open_when_the_browser_runs,
                what=f"open renderer page {page.number}",
                attempts=None,
                backoff=Backoff(first_s=2),
            )
        finally:
            self._replacing.discard(page)

    async def _watch_browser(self) -> None:
        """Restart Chromium when it dies, then every page (the first, then the others)."""
        while True:
            await self.browser.disconnected.wait()
            for page in self.pages:
                page.ready.clear()
            log.error("chromium died; restarting it")
            await self.browser.restart()
            first = self.pages[0]
            if first not in self._replacing:
                self._replacing.add(first)
                await self._replace(first)
            self._spawn(self._open_others())

    async def stats(self) -> dict:
        """Every ready page's own numbers (renderer.mjs poolStats), and their sums."""
        pages = []
        for page in self.pages:
            with contextlib.suppress(Exception):  # a page being replaced has none
                if numbers := await page.stats():
                    pages.append({"page": page.number, **numbers})
        if not pages:
            return {"pages": []}
        first = {key: pages[0].get(key) for key in ("isolation", "snapshotSource")}
        return {"pages": pages, **pooled(pages), **first, "pagesReady": len(pages)}

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for page in self.pages:
            await page.close()
        await self.browser.stop()
