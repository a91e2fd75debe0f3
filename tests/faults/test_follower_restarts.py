"""The events-stream follower resumes after broker restarts while events keep coming.

A gateway or viewer whose follower silently stops never reports another result,
so every accepted job looks lost. Here two real followers read a stream that a
publisher never lets pause, across broker restarts with different downtimes;
each must end up with every published event, and no stream offset twice.
"""

import asyncio
from collections import Counter

import pytest

from shared.broker import Broker
from shared.events import EventFollower
from shared.settings import Settings
from tests.faults.load import SUMMARIES
from tests.faults.test_delivery import _local_broker
from tests.support import EventPublisher, delete_namespace, new_namespace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]
BROKER_SETTLE_S = 5


async def rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    assert await process.wait() == 0, f"rabbitmqctl {' '.join(args)} failed"


@pytest.mark.timeout(300)
async def test_followers_resume_after_broker_restarts_under_load(amqp_url):
    if not _local_broker(amqp_url):
        pytest.fail("this test stops and starts RabbitMQ with rabbitmqctl: run it against the local broker")
    settings = Settings(amqp_url=amqp_url, namespace=new_namespace())
    broker = await Broker(settings).connect()
    offsets = [Counter(), Counter()]
    job_ids = [set(), set()]

    def recorder(n):
        def record(event, offset):
            offsets[n].update([offset])
            job_ids[n].add(event.job_id)

        return record

    followers = [EventFollower(settings, recorder(n)) for n in range(2)]
    publisher = EventPublisher(broker, interval_s=0.02)
    try:
        for follower in followers:
            follower.start()
            assert await wait_until(follower.connected.is_set, 15)
        publisher.start()
        for downtime_s in (0, 3):
            await asyncio.sleep(2)
            await rabbitmqctl("stop_app")
            await asyncio.sleep(downtime_s)
            await rabbitmqctl("start_app")
            settled = await wait_until(lambda: all(set(publisher.published) <= seen for seen in job_ids), 40)
            missing = [len(set(publisher.published) - seen) for seen in job_ids]
            line = f"[follower restart] downtime={downtime_s}s published={len(publisher.published)} missing={missing}"
            print(line)
            SUMMARIES.append(line)
            assert settled, f"followers missing {missing} events 40 s after the broker came back"
        await publisher.stop()
        assert await wait_until(lambda: all(set(publisher.published) <= seen for seen in job_ids), 15)
        for n, follower in enumerate(followers):
            assert not follower._task.done(), "a follower stopped following"
            assert max(offsets[n].values()) == 1, "a follower handled a stream offset twice"
    finally:
        await publisher.stop()
        for follower in followers:
            await follower.stop()
        await broker.close()
        # Deleting a quorum queue with at-least-once dead-lettering while the broker is still
        # starting its dead-letter worker kills RabbitMQ 3.10's rabbit_fifo_dlx_sup for good
        # (scripts/broker_check.py); give the restarted broker time to settle first.
        await asyncio.sleep(BROKER_SETTLE_S)
        await delete_namespace(amqp_url, settings.namespace)
