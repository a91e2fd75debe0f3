"""The RabbitMQ topology, declared in one place and by every service alike.

::

    gateway --publish--> [<ns>.jobs] direct --render--> (<ns>.jobs) quorum queue --> renderers
                                                          |  delivered delivery_limit times
                                                          v  without an ack (renderer crashed)
                         [<ns>.jobs.dlx] fanout --> (<ns>.jobs.dead) quorum --> renderers publish
                                                                                 a failed result
    gateway, renderers --> [<ns>.events] fanout --> (<ns>.events) stream --> gateways, viewers

Why these types:

* The jobs queue is a *quorum* queue: replicated when the broker is a
  cluster, durable, and it counts deliveries, so a job that kills its
  renderer every time is dead-lettered after ``delivery_limit`` attempts
  instead of looping forever. Dead-lettering is ``at-least-once`` (needs
  ``reject-publish`` overflow), so a poison job cannot vanish between queues.
* Events (queued, running, results) go to a *stream*: an append-only log
  that every gateway and viewer reads independently, replayable from the
  start. That is where results live: a restarted gateway or viewer replays
  it and knows every job that finished while it was down, with no database.

Every name starts with the settings' namespace, so test runs on a shared
broker cannot see each other; :func:`delete` removes one namespace's objects.

If RabbitMQ already has one of these queues or exchanges with other
arguments, it refuses the declaration; :func:`declare` turns that into
:class:`TopologyRefused`, whose message names the queue and the argument,
because no amount of retrying fixes it.
"""

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.settings import Settings

JOBS_ROUTING_KEY = "render"


class TopologyRefused(Exception):
    """RabbitMQ refused a declaration: the object exists with other arguments (an operator must act)."""


@dataclass(frozen=True)
class Names:
    namespace: str

    @property
    def jobs_exchange(self) -> str:
        return f"{self.namespace}.jobs"

    @property
    def jobs_queue(self) -> str:
        return f"{self.namespace}.jobs"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.jobs.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.jobs.dead"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def events_stream(self) -> str:
        return f"{self.namespace}.events"


@dataclass
class Topology:
    names: Names
    jobs_exchange: AbstractExchange
    jobs_queue: AbstractQueue
    dead_letter_queue: AbstractQueue
    events_exchange: AbstractExchange
    events_stream: AbstractQueue


def jobs_queue_arguments(settings: Settings) -> dict:
    names = Names(settings.namespace)
    return {
        "x-queue-type": "quorum",
        # A job is dead-lettered when it has been returned more than this many
        # times, so delivery_limit - 1 returns means delivery_limit deliveries.
        "x-delivery-limit": settings.delivery_limit - 1,
        "x-dead-letter-exchange": names.dead_letter_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-max-length": settings.max_queued_jobs,
    }


def events_segment_bytes(settings: Settings) -> int:
    """The events stream's segment size: retention drops whole segments, so keep them small against the limit."""
    return max(1_000_000, settings.events_max_bytes // 20)


def events_stream_arguments(settings: Settings) -> dict:
    return {
        "x-queue-type": "stream",
        "x-max-age": settings.events_max_age,
        "x-max-length-bytes": settings.events_max_bytes,
        "x-stream-max-segment-size-bytes": events_segment_bytes(settings),
    }


async def declare(channel: AbstractChannel, settings: Settings) -> Topology:
    """Declare (idempotently) every exchange and queue plotfarm uses; TopologyRefused if RabbitMQ will not."""
    try:
        return await _declare(channel, settings)
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        reply = str(exc.args[0] if exc.args else exc)
        raise TopologyRefused(
            f"{reply}. plotfarm declares it with {_expected(settings)}; delete the existing queue or exchange "
            "(it may hold jobs), or set PLOTFARM_NAMESPACE to use other names"
        ) from exc


def _expected(settings: Settings) -> str:
    return f"jobs queue arguments {jobs_queue_arguments(settings)}, events stream arguments {events_stream_arguments(settings)}"


async def _declare(channel: AbstractChannel, settings: Settings) -> Topology:
    names = Names(settings.namespace)
    jobs_exchange = await channel.declare_exchange(names.jobs_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    dlx = await channel.declare_exchange(names.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    events_exchange = await channel.declare_exchange(names.events_exchange, aio_pika.ExchangeType.FANOUT, durable=True)

    jobs_queue = await channel.declare_queue(names.jobs_queue, durable=True, arguments=jobs_queue_arguments(settings))
    await jobs_queue.bind(jobs_exchange, JOBS_ROUTING_KEY)
    dead_letter_queue = await channel.declare_queue(
        names.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letter_queue.bind(dlx)
    events_stream = await channel.declare_queue(
        names.events_stream, durable=True, arguments=events_stream_arguments(settings)
    )
    await events_stream.bind(events_exchange)
    return Topology(names, jobs_exchange, jobs_queue, dead_letter_queue, events_exchange, events_stream)


async def delete(channel: AbstractChannel, namespace: str) -> None:
    """Remove one namespace's queues and exchanges (test clean-up)."""
    names = Names(namespace)
    for queue in (names.jobs_queue, names.dead_letter_queue, names.events_stream):
        await channel.queue_delete(queue)
    for exchange in (names.jobs_exchange, names.dead_letter_exchange, names.events_exchange):
        await channel.exchange_delete(exchange)
