"""``python -m services.gateway``: the HTTP front door that queues render jobs."""

import asyncio

import structlog

from services.gateway.app import create_app
from shared.broker import Broker, EventFollower
from shared.jobs import JobIndex
from shared.logging import configure_logging
from shared.service import serve, stop_event
from shared.settings import get_settings

log = structlog.get_logger("services.gateway")


async def main() -> None:
    settings = get_settings()
    configure_logging(settings, "gateway")
    stop = stop_event()
    broker = Broker(settings)
    index = JobIndex(settings.gateway_cache_bytes)
    follower = EventFollower(settings, lambda event, _offset: index.apply(event))
    runner = await serve(create_app(settings, broker, index, follower), settings.gateway_host, settings.gateway_port)
    log.info("gateway listening", url=settings.public_gateway_url, port=settings.gateway_port)
    # Serve (and answer 503) even while the broker is unreachable.
    connecting = asyncio.create_task(broker.connect())
    follower.start()
    await stop.wait()
    log.info("gateway stopping")
    connecting.cancel()
    await follower.stop()
    await runner.cleanup()
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main())
