"""The connection to RabbitMQ that publishes (with confirms) and consumes.

:class:`Broker` is a robust (self-reconnecting) connection with one
publisher-confirm channel and the topology declared on it; aio-pika
re-declares the topology and resumes consumers after a reconnect. Reading the
events stream is another matter (shared/events.py).

Connecting is retried forever (a service waits for its broker, saying so at
every attempt). With several node URLs (``PLOTFARM_AMQP_URLS``) each attempt
tries every node in turn, and a lost connection is pointed at the next node
before aio-pika reconnects (shared/amqp_nodes.py). A broker that *refuses*
the topology, because a queue exists with other arguments, is not waited
for: :class:`~shared.topology.TopologyRefused` names the queue and the
argument, :attr:`Broker.problem` keeps it for ``/readyz``, and the service
decides (the renderer exits, the gateway answers 503 and stays not ready).
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from pamqp.commands import Basic
from pydantic import BaseModel

from shared import amqp_nodes, topology
from shared.messages import JobEvent, RenderJob
from shared.retry import Backoff, retry
from shared.settings import Settings

log = structlog.get_logger(__name__)

CONNECT_BACKOFF = Backoff(first_s=0.5, max_s=5.0)
# A nacked publish replaces the publishing channel, at most this often (see Broker._replace_publisher).
PUBLISHER_REPLACE_S = 1.0


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
    def __init__(self, settings: Settings, name: str = ""):
        """``name``: who connects (``"renderer r1"``), shown by RabbitMQ as the connection's name."""
        self.settings = settings
        self.name = f"plotfarm {name}".strip()
        self.connection: AbstractRobustConnection | None = None
        self.channel = None
        self.topology: topology.Topology | None = None
        self.problem: str | None = "not connected yet"
        self.failover: amqp_nodes.RobustFailover | None = None
        self._publisher_replaced_at: float | None = None
        self._replacing_publisher = False
        self._closing: set[asyncio.Task] = set()

    async def connect(self) -> "Broker":
        """Connect and declare the topology, retrying forever; a refused topology is raised at once."""
        await retry(
            self._connect_once,
            what="connect to RabbitMQ at " + ", ".join(map(amqp_nodes.describe, amqp_nodes.node_urls(self.settings))),
            attempts=None,
            backoff=CONNECT_BACKOFF,
            give_up_on=(topology.TopologyRefused,),
        )
        self.problem = None
        return self

    async def _connect_once(self) -> None:
        connection = failover = None
        try:
            connection, failover = await amqp_nodes.connect_robust(
                self.settings, timeout=10, reconnect_interval=1, client_properties={"connection_name": self.name}
            )
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self.topology = await topology.declare(channel, self.settings)
        except topology.TopologyRefused as exc:
            self.problem = str(exc)
            log.error("RabbitMQ refused plotfarm's topology", problem=str(exc))
            await self._close_quietly(connection, failover)
            raise
        except BaseException as exc:
            self.problem = f"connecting: {exc!r}"
            await self._close_quietly(connection, failover)
            raise
        self.connection, self.channel, self.failover = connection, channel, failover

    @staticmethod
    async def _close_quietly(connection, failover=None) -> None:
        if failover is not None:
            await failover.stop()
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
            if isinstance(exc.frame, Basic.Nack):
                await self._replace_publisher(exc)
            raise BrokerUnavailable(f"RabbitMQ refused the message: {exc}") from exc
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise BrokerUnavailable(f"lost the connection to RabbitMQ: {exc}") from exc

    async def _replace_publisher(self, cause: Exception) -> None:
        """Open a new publishing channel after a nack, at most every PUBLISHER_REPLACE_S.

        Why: a nack usually means the jobs queue is full, but on a cluster
        RabbitMQ 3.10 also nacks, for good, every publish on a channel whose
        first publish to a quorum queue came while that queue was electing a
        new leader (seen here: a channel opened 4 ms after the leader's node
        was killed was nacked indefinitely; a new channel on the same connection
        was acked at once). After a failover the reconnect is fast enough to
        land in that window. The old channel is closed only after
        ``publish_timeout_s``, so confirms still due on it can arrive.
        """
        loop = asyncio.get_running_loop()
        recently = (
            self._publisher_replaced_at is not None and loop.time() - self._publisher_replaced_at < PUBLISHER_REPLACE_S
        )
        if self._replacing_publisher or recently or self.connection is None:
            return
        self._replacing_publisher, self._publisher_replaced_at = True, loop.time()
        try:
            channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
            declared = await topology.declare(channel, self.settings)
        except Exception as exc:  # noqa: BLE001  (keep the old channel; the next nack tries again)
            log.warning("could not replace the publishing channel", cause=repr(exc)[:300])
            return
        finally:
            self._replacing_publisher = False
        old, self.channel, self.topology = self.channel, channel, declared
        log.warning("publish nacked: publishing on a new channel", cause=str(cause)[:300])
        task = asyncio.create_task(self._close_later(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_later(self, channel) -> None:
        await asyncio.sleep(self.settings.publish_timeout_s)
        with contextlib.suppress(Exception):
            await channel.close()

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
        await self.connection.connected.wait()  # the connection may be reconnecting since connect()
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await topology.declare(channel, self.settings)
        subscribed = getattr(declared, queue)
        tag = await subscribed.consume(callback)
        return Subscription(channel, subscribed, tag)

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        if self.failover is not None:
            await self.failover.stop()
        if self.connection is not None:
            await self.connection.close()
