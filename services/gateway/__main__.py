"""``python -m services.gateway``: the HTTP front door that queues render jobs."""

import asyncio
import contextlib

import structlog

from services.gateway.app import create_app
from services.gateway.quota import StreamShare
from shared.broker import Broker
from shared.events import EventFollower
from shared.jobs import JobIndex
from shared.logging import configure_logging
from shared.service import serve, stop_event
from shared.settings import get_settings
from shared.topology import TopologyRefused

log = structlog.get_logger("services.gateway")


async def connect(broker: Broker) -> None:
    """Connect in the background: the gateway serves (and answers 503, not ready) until it has."""
    try:
        await broker.connect()
        log.info("connected to RabbitMQ")
    except TopologyRefused:
        # Logged by the broker, kept in broker.problem for /readyz; jobs get 503 with the reason.
        log.error("the gateway will not accept jobs until the topology is fixed and the gateway restarted")


async def main() -> None:
    settings = get_settings()
    configure_logging(settings, "gateway")
    stop = stop_event()
    broker = Broker(settings, "gateway")
    index = JobIndex(settings.results_cache_bytes, settings.tenant_share)
    stream_share = StreamShare(settings)
    follower = EventFollower(settings, lambda event, _offset: index.apply(event), on_stored=stream_share.add_event)
    app = create_app(settings, broker, index, follower, stream_share=stream_share)
    runner = await serve(app, settings.gateway_host, settings.gateway_port)
    log.info("gateway listening", url=settings.public_gateway_url, port=settings.gateway_port)
    connecting = asyncio.create_task(connect(broker))
    follower.start()
    await stop.wait()
    log.info("gateway stopping")
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await connecting
    await follower.stop()
    await runner.cleanup()
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main())
