"""Connections to RabbitMQ: confirmed publishing, and following the events stream.

:class:`Broker` is a robust (self-reconnecting) connection with one
publisher-confirm channel and the topology declared on it; aio-pika re-declares
the topology and resumes consumers after a reconnect.

:class:`EventFollower` reads the events stream. A stream consumer must not be
restored blindly (aio-pika would restart it from the offset it first asked
for), so it runs its own loop: connect, consume from the offset after the last
event it handled, and on any connection loss start again from there.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import BaseModel

from shared import topology
from shared.messages import JobEvent, RenderJob, parse_event
from shared.settings import Settings

log = structlog.get_logger(__name__)

RECONNECT_DELAYS = (0.5, 1, 2, 5)


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


class Broker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.connection: AbstractRobustConnection | None = None
        self.channel = None
        self.topology: topology.Topology | None = None

    async def connect(self) -> "Broker":
        """Connect, waiting (with capped backoff) until the broker answers."""
        for attempt in range(1, 1_000_000):
            try:
                self.connection = await aio_pika.connect_robust(
                    self.settings.amqp_url, timeout=10, reconnect_interval=1
                )
                break
            except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS)) - 1]
                log.warning("broker unreachable, retrying", error=str(exc), attempt=attempt, retry_in_s=delay)
                await asyncio.sleep(delay)
        self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.topology = await topology.declare(self.channel, self.settings)
        return self

    @property
    def ready(self) -> bool:
        return (
            self.connection is not None
            and self.connection.connected.is_set()
            and self.channel is not None
            and not self.channel.is_closed
        )

    async def publish_job(self, job: RenderJob) -> None:
        message = persistent_message(job, message_id=job.job_id)
        await self._publish("jobs_exchange", message, topology.JOBS_ROUTING_KEY)

    async def publish_event(self, event: JobEvent) -> None:
        await self._publish("events_exchange", persistent_message(event, message_id=event.job_id), "")

    async def _publish(self, exchange_name: str, message: aio_pika.Message, routing_key: str) -> None:
        """Publish and wait for the broker's confirm, or raise BrokerUnavailable."""
        if not self.ready:
            raise BrokerUnavailable("not connected to RabbitMQ")
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

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


EventHandler = Callable[[JobEvent, int], Awaitable[None] | None]


class EventFollower:
    """Reads the events stream from ``start`` and calls ``handler(event, offset)`` for each.

    ``caught_up`` is set once the replay reached the stream's end as it was
    when following began, so a service can wait for its history before it
    answers questions about old jobs.
    """

    def __init__(self, settings: Settings, handler: EventHandler, *, start: str | int = "first"):
        self.settings = settings
        self.handler = handler
        self.next_offset: str | int = start
        self.last_offset: int | None = None
        self.connected = asyncio.Event()
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-follower")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._follow_once()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (any failure: reconnect and resume)
                attempt += 1
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS)) - 1]
                log.warning(
                    "events stream lost, resuming", error=repr(exc), resume_from=self.next_offset, retry_in_s=delay
                )
            finally:
                self.connected.clear()
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS)) - 1] if attempt else 0.5)

    async def _follow_once(self) -> None:
        connection = await aio_pika.connect(self.settings.amqp_url, timeout=10)
        async with connection:
            closed = asyncio.get_running_loop().create_future()
            connection.close_callbacks.add(lambda *_: closed.done() or closed.set_result(None))
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=500)
            declared = await topology.declare(channel, self.settings)
            stream = declared.events_stream
            end = await self._end_offset(connection)
            if end is None or (self.last_offset is not None and self.last_offset >= end):
                self.caught_up.set()
            tag = await stream.consume(
                lambda message: self._on_message(message, end), arguments={"x-stream-offset": self.next_offset}
            )
            self.connected.set()
            log.info("following events stream", stream=stream.name, offset=self.next_offset)
            try:
                await closed
            finally:
                with contextlib.suppress(Exception):
                    await stream.cancel(tag)

    async def _end_offset(self, connection) -> int | None:
        """The offset of the stream's last message now, or None when it is empty.

        Consuming from "last" starts at the beginning of the last chunk, so read
        until the deliveries stop coming, then cancel (never reject: streams
        close the connection on basic.reject).
        """
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=1000)
            stream = await channel.get_queue(topology.Names(self.settings.namespace).events_stream, ensure=False)
            offsets: list[int] = []
            got = asyncio.Event()

            async def remember(message: AbstractIncomingMessage) -> None:
                offsets.append(int(message.headers["x-stream-offset"]))
                got.set()
                await message.ack()

            tag = await stream.consume(remember, arguments={"x-stream-offset": "last"})
            while True:
                got.clear()
                try:
                    await asyncio.wait_for(got.wait(), 0.3)
                except TimeoutError:
                    break
            await stream.cancel(tag)
            return max(offsets) if offsets else None
        finally:
            await channel.close()

    async def _on_message(self, message: AbstractIncomingMessage, end: int | None) -> None:
        offset = int(message.headers["x-stream-offset"])
        try:
            event = parse_event(message.body)
        except ValueError as exc:
            log.warning("skipping malformed event", offset=offset, error=str(exc))
        else:
            result = self.handler(event, offset)
            if asyncio.iscoroutine(result):
                await result
        self.last_offset = offset
        self.next_offset = offset + 1
        await message.ack()
        if end is not None and offset >= end:
            self.caught_up.set()
