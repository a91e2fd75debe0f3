"""The renderer's life, in one place: start, serve until told to stop, drain, stop.

:meth:`Renderer.run` is the whole of it (``python -m services.renderer`` only
calls it):

1. serve ``/healthz``, ``/readyz``, ``/stats`` and ``/metrics`` (not ready yet);
2. connect to RabbitMQ, waiting for it as long as it takes, and meanwhile
   start Chromium and the interpreter pool (no job is taken before both are
   done and a fresh interpreter is ready); a broker that refuses plotfarm's
   topology, or a Chromium that cannot run as configured, ends the renderer
   here, with the reason and :data:`EX_CONFIG`, instead of a restart loop of
   tracebacks; SIGTERM or Ctrl-C may interrupt a slow start;
4. consume jobs until ``stop`` is set;
5. drain: take no more jobs, give those in flight ``shutdown_grace_s``, hand
   the rest back to the queue; then close the page, the broker, the health server.
"""

import asyncio
import time

import structlog
from playwright.async_api import Playwright

from services.renderer.browser import ChromiumSetupError, HeadlessBrowser
from services.renderer.consumer import JobConsumer
from services.renderer.pages import PagePool
from shared.assets import AssetStore
from shared.broker import Broker
from shared.health import serve_health, when
from shared.metrics import RendererMetrics
from shared.settings import Settings
from shared.topology import TopologyRefused

log = structlog.get_logger("services.renderer")

# The process exit status for "configuration error" (sysexits.h): the
# supervisor does not restart a renderer that exits with it.
EX_CONFIG = 78


class Renderer:
    def __init__(self, settings: Settings, playwright: Playwright | None = None):
        """``playwright``: a driver already started (``__main__`` starts it first), else one is started."""
        self.settings = settings
        self.broker = Broker(settings, f"renderer {settings.renderer_id}")
        self.pages = PagePool(HeadlessBrowser(settings, playwright), settings)
        self.metrics = RendererMetrics()
        self.consumer = JobConsumer(settings, self.broker, self.pages, self.metrics)
        self.metrics.watch_pool(self.pages)
        self.metrics.watch_consumer(self.consumer)

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until ``stop`` is set; the process exit status."""
        started = time.perf_counter()
        AssetStore(self.settings).check()  # fail now, with the command to run, if the build step was skipped
        health = await self._serve_health()
        try:
            try:
                if not await self._until_stopped(self._connect_and_start_page(), stop):
                    return 0
            except TopologyRefused as exc:
                log.error("renderer cannot start: RabbitMQ refused plotfarm's topology", problem=str(exc))
                return EX_CONFIG
            except ChromiumSetupError as exc:
                log.error("renderer cannot start: Chromium cannot run as configured", problem=str(exc))
                return EX_CONFIG
            await self.consumer.start()
            log.info(
                "renderer ready",
                cold_start_ms=round((time.perf_counter() - started) * 1000),
                concurrency=self.settings.renderer_concurrency,
                isolation=self.settings.isolation,
            )
            await stop.wait()
            log.info("shutting down", in_flight=self.consumer.in_flight, grace_s=self.settings.shutdown_grace_s)
            await self.consumer.drain(self.settings.shutdown_grace_s)
            return 0
        finally:
            await self._close(health)
            log.info("renderer stopped", jobs_completed=self.consumer.completed)

    async def _connect_and_start_page(self) -> None:
        """Connect to RabbitMQ and start Chromium and the pool at the same time.

        Neither needs the other until jobs are consumed, and a renderer started
        beside its broker (``docker compose up``) would otherwise begin its
        three seconds of Chromium only once RabbitMQ accepts connections.
        The first to fail cancels the other.
        """
        steps = [asyncio.ensure_future(self.broker.connect()), asyncio.ensure_future(self.pages.start())]
        try:
            await asyncio.gather(*steps)
        finally:
            for step in steps:
                step.cancel()
            await asyncio.gather(*steps, return_exceptions=True)

    @staticmethod
    async def _until_stopped(step, stop: asyncio.Event) -> bool:
        """Run a start-up step unless ``stop`` comes first; True when the step finished."""
        doing = asyncio.ensure_future(step)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({doing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if doing.done():
            doing.result()
            return True
        doing.cancel()
        await asyncio.gather(doing, return_exceptions=True)
        return False

    async def _serve_health(self):
        if not self.settings.renderer_health_port:
            return None
        checks = {
            "broker": self.broker.not_ready_because,
            "interpreters": when(self.pages.any_ready, "no renderer page ready (starting, or being replaced)"),
        }
        return await serve_health(
            self.settings.renderer_health_host,
            self.settings.renderer_health_port,
            checks,
            stats=self.stats,
            metrics=self.metrics,
            stats_public=self.settings.renderer_stats_public,
        )

    async def stats(self) -> dict:
        """Jobs so far, the interpreter pool's own numbers (restores, their median and p95), and
        what Chromium's sandbox looks like right now (uid, seccomp, no_new_privs per process type)."""
        return {
            "renderer_id": self.settings.renderer_id,
            "in_flight": self.consumer.in_flight,
            "completed": self.consumer.completed,
            "pool": await self.pages.stats(),
            "chromium": await asyncio.to_thread(self.pages.browser.sandbox_report),
        }

    async def _close(self, health) -> None:
        await self.pages.stop()
        await self.broker.close()
        if health is not None:
            await health.cleanup()
