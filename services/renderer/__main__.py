"""``python -m services.renderer``: consume render jobs with warm Pyodide interpreters."""

import asyncio
import time

import structlog

from services.renderer.browser import HeadlessBrowser
from services.renderer.page import RendererPage
from services.renderer.worker import Renderer
from shared.assets import AssetStore
from shared.broker import Broker
from shared.health import serve_health
from shared.logging import configure_logging
from shared.service import stop_event
from shared.settings import get_settings

log = structlog.get_logger("services.renderer")


async def main() -> None:
    started = time.perf_counter()
    settings = get_settings()
    configure_logging(settings, "renderer")
    structlog.contextvars.bind_contextvars(renderer_id=settings.renderer_id)
    AssetStore(settings).check()  # fail now, with the command to run, if the build step was skipped

    stop = stop_event()

    broker = await Broker(settings).connect()
    page = RendererPage(HeadlessBrowser(settings), settings)
    renderer = Renderer(settings, broker, page)
    health = None
    if settings.renderer_health_port:
        health = await serve_health(
            "0.0.0.0",
            settings.renderer_health_port,
            {"broker": lambda: broker.ready, "interpreters": page.ready.is_set},
            stats=renderer.stats,
        )
    # Warm up first (no job is taken before an interpreter is ready), but let
    # Ctrl-C / SIGTERM interrupt a slow start.
    starting = asyncio.create_task(page.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        starting.result()
        await renderer.start_consuming()
        log.info(
            "renderer ready",
            cold_start_ms=round((time.perf_counter() - started) * 1000),
            concurrency=settings.renderer_concurrency,
            isolation=settings.isolation,
        )
        await stopping
    else:
        starting.cancel()

    log.info("shutting down", in_flight=renderer.in_flight, grace_s=settings.shutdown_grace_s)
    if starting.done() and not starting.cancelled():
        await renderer.drain(settings.shutdown_grace_s)
    await page.stop()
    await broker.close()
    if health is not None:
        await health.cleanup()
    log.info("renderer stopped", jobs_completed=renderer.completed)


if __name__ == "__main__":
    asyncio.run(main())
