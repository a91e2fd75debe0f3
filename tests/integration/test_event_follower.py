"""The events stream follower (gateway and viewer history) keeps up with a busy stream.

These run a real :class:`EventFollower` against the real broker, with a
publisher that never pauses: the situation of a gateway or viewer that
(re)connects while renderers keep publishing.
"""

import asyncio
from collections import Counter

import aio_pika
import pytest

from shared.broker import Broker
from shared.events import EventFollower
from shared.settings import Settings
from shared.topology import Names
from tests.support import EventPublisher, delete_namespace, new_namespace, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(amqp_url):
    settings = Settings(amqp_url=amqp_url, namespace=new_namespace())
    yield settings
    await delete_namespace(amqp_url, settings.namespace)


@pytest.fixture
async def broker(settings):
    broker = await Broker(settings).connect()
    yield broker
    await broker.close()


async def test_follower_starts_and_catches_up_while_events_never_pause(settings, broker):
    publisher = EventPublisher(broker).start()
    assert await wait_until(lambda: len(publisher.published) >= 300, 30)
    seen = Counter()
    follower = EventFollower(settings, lambda event, _offset: seen.update([event.job_id]))
    follower.start()
    try:
        # A follower that waits for a pause in the stream before it starts would never start here.
        assert await wait_until(follower.caught_up.is_set, 15), "never caught up with a stream that keeps growing"
        assert follower.connected.is_set()
        await publisher.stop()
        assert await wait_until(lambda: set(publisher.published) <= set(seen), 15)
    finally:
        await follower.stop()
    assert set(seen) == set(publisher.published)
    assert max(seen.values()) == 1


async def test_a_failing_handler_does_not_stall_the_follower(settings, broker):
    """Events the handler chokes on are skipped (and logged); more of them than the prefetch must not stop delivery."""
    publisher = EventPublisher(broker, interval_s=0)
    handled = []

    def handler(event, _offset):
        if int(event.job_id.split("-")[1]) % 2 == 0:
            raise ValueError("a bug in the handler")
        handled.append(event.job_id)

    follower = EventFollower(settings, handler)
    follower.start()
    try:
        assert await wait_until(follower.connected.is_set, 15)
        publisher.start()
        assert await wait_until(lambda: len(publisher.published) >= 1400, 60)
        await publisher.stop()
        odd = {job_id for job_id in publisher.published if int(job_id.split("-")[1]) % 2}
        assert await wait_until(lambda: odd <= set(handled), 15), f"{len(odd - set(handled))} events never handled"
    finally:
        await follower.stop()


async def test_the_watchdog_notices_a_silent_consumer(settings, broker, monkeypatch):
    """Events in the stream past ``next_offset`` that never arrive mean the consumer is dead (and nothing else does)."""
    monkeypatch.setattr("shared.events.STALL_CHECK_S", 0.2)
    monkeypatch.setattr("shared.events.STALL_CONFIRM_S", 0.5)
    publisher = EventPublisher(broker, interval_s=0).start()
    assert await wait_until(lambda: len(publisher.published) >= 20, 15)
    await publisher.stop()
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        reasons = []
        follower = EventFollower(settings, lambda *_: None)
        follower.next_offset = 10  # as if events 0-9 were handled, and then nothing more arrived
        await asyncio.wait_for(follower._watch_for_stall(connection, reasons.append), 15)
        assert reasons and "stalled: event 10" in reasons[0]

        # Nothing unreceived (the follower is at the end): the watchdog keeps quiet.
        follower.next_offset = 10**6
        watching = asyncio.create_task(follower._watch_for_stall(connection, reasons.append))
        await asyncio.sleep(3)
        assert not watching.done() and len(reasons) == 1
        watching.cancel()


async def test_a_consumer_cancelled_by_the_broker_is_replaced(settings, broker, monkeypatch):
    """The broker cancels the consumer (here: the stream is deleted) but keeps the connection open."""
    monkeypatch.setattr("shared.events.STALL_CHECK_S", 3600, raising=False)  # the watchdog must not be what saves it
    seen = []
    follower = EventFollower(settings, lambda event, _offset: seen.append(event.job_id))
    follower.start()
    publisher = EventPublisher(broker, interval_s=0.05)
    try:
        assert await wait_until(follower.connected.is_set, 15)
        publisher.start()
        assert await wait_until(lambda: len(seen) >= 20, 15)
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(Names(settings.namespace).events_stream)
        # The follower re-declares the stream when it follows again, so later events arrive.
        published_after = len(publisher.published) + 50
        assert await wait_until(lambda: len(publisher.published) >= published_after, 30)
        assert await wait_until(lambda: publisher.published[-1] in seen, 15), "the follower never came back"
    finally:
        await publisher.stop()
        await follower.stop()
