"""The connection to RabbitMQ that publishes (with confirms) and consumes.

:class:`Broker` is a robust (self-reconnecting) connection with one
publisher-confirm channel and the topology declared on it; aio-pika
re-declares the topology and resumes consumers after a reconnect. Reading the
events stream is another matter (shared/events.py).

Connecting is retried forever (a service waits for its broker, saying so at
every attempt); a broker that *refuses* the topology, because a queue exists
with other arguments, is not waited for: :class:`~shared.topology.TopologyRefused`
names the queue and the argument, :attr:`Broker.problem` keeps it for
``/readyz``, and the service decides (the renderer exits, the gateway answers
503 and stays not ready).
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from pydantic import BaseModel

from shared import topology
from shared.messages import JobEvent, RenderJob
from shared.retry import Backoff, retry
from shared.settings import Settings

log = structlog.get_logger(__name__)

CONNECT_BACKOFF = Backoff(first_s=0.5, max_s=5.0)


class BrokerUnavailable(Exception):
    """RabbitMQ did not take (confirm) a message in time."""


def persistent_message(model: BaseModel, *, message_id: str, **headers) -> aio_pika.Message:
    return aio_pika.Message(
        body=model.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        headers=headers or None,
    )


@dataclass
class Subscription:
    """A consumer of one queue on a channel of its own (see :meth:`Broker.consume`)."""

    channel: AbstractChannel
    queue: AbstractQueue
    tag: str

    async def cancel(self) -> None:
        """Take no more messages; the ones in hand can still be acked."""
        with contextlib.suppress(Exception):
            await self.queue.cancel(self.tag)

    async def close(self) -> None:
        """Close the channel: RabbitMQ requeues every message taken but not acked."""
        with contextlib.suppress(Exception):
            await self.channel.close()


class Broker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.connection: AbstractRobustConnection | None = None
        self.channel = None
        self.topology: topology.Topology | None = None
        self.problem: str | None = "not connected yet"

    async def connect(self) -> "Broker":
        """Connect and declare the topology, retrying forever; a refused topology is raised at once."""
        await retry(
            self._connect_once,
            what=f"connect to RabbitMQ at {self.settings.amqp_url.split('@')[-1]}",
            attempts=None,
            backoff=CONNECT_BACKOFF,
            give_up_on=(topology.TopologyRefused,),
        )
        self.problem = None
        return self

    async def _connect_once(self) -> None:
        connection = None
        try:
            connection = await aio_pika.connect_robust(self.settings.amqp_url, timeout=10, reconnect_interval=1)
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self.topology = await topology.declare(channel, self.settings)
        except topology.TopologyRefused as exc:
            self.problem = str(exc)
            log.error("RabbitMQ refused plotfarm's topology", problem=str(exc))
            await self._close_quietly(connection)
            raise
        except BaseException as exc:
            self.problem = f"connecting: {exc!r}"
            await self._close_quietly(connection)
            raise
        self.connection, self.channel = connection, channel

    @staticmethod
    async def _close_quietly(connection) -> None:
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    @property
    def ready(self) -> bool:
        return self.not_ready_because() is None

    def not_ready_because(self) -> str | None:
        """Why this broker connection cannot be used now, or None when it can (for ``/readyz``)."""
        if self.problem:
            return self.problem
        if self.connection is None or not self.connection.connected.is_set():
            return "connection to RabbitMQ lost; reconnecting"
        if self.channel is None or self.channel.is_closed:
            return "publishing channel closed; reopening"
        return None

    async def publish_job(self, job: RenderJob) -> None:
        message = persistent_message(job, message_id=job.job_id)
        await self._publish("jobs_exchange", message, topology.JOBS_ROUTING_KEY)

    async def publish_event(self, event: JobEvent) -> None:
        await self._publish("events_exchange", persistent_message(event, message_id=event.job_id), "")

    async def _publish(self, exchange_name: str, message: aio_pika.Message, routing_key: str) -> None:
        """Publish and wait for the broker's confirm, or raise BrokerUnavailable."""
        if reason := self.not_ready_because():
            raise BrokerUnavailable(reason)
        exchange = getattr(self.topology, exchange_name)
        try:
            await asyncio.wait_for(
                exchange.publish(message, routing_key, mandatory=True), self.settings.publish_timeout_s
            )
        except TimeoutError as exc:
            raise BrokerUnavailable("RabbitMQ did not confirm the message in time") from exc
        except aio_pika.exceptions.DeliveryError as exc:
            raise BrokerUnavailable(f"RabbitMQ refused the message: {exc}") from exc
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise BrokerUnavailable(f"lost the connection to RabbitMQ: {exc}") from exc

    async def consume(
        self,
        queue: str,
        callback: Callable[[AbstractIncomingMessage], Awaitable[None]],
        *,
        prefetch: int,
    ) -> Subscription:
        """Consume one of the topology's queues (``"jobs_queue"``, ``"dead_letter_queue"``) with manual ack.

        The queue is declared on the subscription's own channel, so after a
        reconnect aio-pika re-declares it and resumes the consumer.
        """
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await topology.declare(channel, self.settings)
        subscribed = getattr(declared, queue)
        tag = await subscribed.consume(callback)
        return Subscription(channel, subscribed, tag)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
