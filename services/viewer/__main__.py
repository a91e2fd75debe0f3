"""``python -m services.viewer``: the live page of results, pushed over WebSockets."""

import asyncio

import structlog

from services.viewer.app import create_app
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.events import EventFollower
from shared.logging import configure_logging
from shared.service import serve, stop_event
from shared.settings import get_settings

log = structlog.get_logger("services.viewer")


async def main() -> None:
    settings = get_settings()
    configure_logging(settings, "viewer")
    stop = stop_event()
    live = LiveJobs(
        settings.viewer_history, settings.results_cache_bytes, settings.viewer_outbox_size, settings.tenant_share
    )
    follower = EventFollower(settings, live.apply)
    app = create_app(settings, live, follower, AssetStore(settings), ApiKeys.from_settings(settings))
    runner = await serve(app, settings.viewer_host, settings.viewer_port)
    log.info("viewer listening", url=settings.public_viewer_url, port=settings.viewer_port)
    follower.start()
    await stop.wait()
    log.info("viewer stopping")
    await follower.stop()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
