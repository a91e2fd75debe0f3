"""Following the events stream: every gateway and viewer reads it from its own offset.

A stream consumer must not be restored blindly (aio-pika would restart it
from the offset it first asked for), so :class:`EventFollower` runs its own
loop: connect, consume from the offset after the last event it handled, and
on any loss (connection, channel or consumer) start again from there,
forever, logging every time why. A broker that refuses the topology is
logged as an error naming the queue and argument and reported by
:meth:`EventFollower.not_ready_because`, and the follower keeps trying (an
operator may fix the queue).
"""

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage

from shared import amqp_nodes, topology
from shared.messages import JobEvent, JobStarted, RenderResult, parse_event
from shared.retry import Backoff
from shared.settings import Settings

log = structlog.get_logger(__name__)

RECONNECT_BACKOFF = Backoff(first_s=0.5, max_s=5.0)
# Finding the stream's end: stop reading at a pause this long, or after this long in all.
END_OFFSET_PAUSE_S = 0.3
END_OFFSET_READ_S = 2.0
# A follower that received nothing for STALL_CHECK_S peeks (for up to STALL_PEEK_S) for
# an event it has not received; if there is one and it has still not arrived after
# STALL_CONFIRM_S, the follower follows again from where it was.
STALL_CHECK_S = 15.0
STALL_PEEK_S = 1.0
STALL_CONFIRM_S = 3.0


EventHandler = Callable[[JobEvent, int], Awaitable[None] | None]
# (event, offset, size): the bytes of its message, what the stream's retention counts.
StoredHandler = Callable[[JobEvent, int, int], None]


def event_time(event: JobEvent) -> datetime:
    """When the event happened, by its own timestamp: queued, started, or the result's finish."""
    if isinstance(event, RenderResult):
        return event.finished_at
    if isinstance(event, JobStarted):
        return event.started_at
    return event.submitted_at


class EventFollower:
    """Reads the events stream from ``start`` and calls ``handler(event, offset)`` for each.

    ``caught_up`` is set once the replay reached the stream's end as it was
    when following began, so a service can wait for its history before it
    answers questions about old jobs.

    How far behind it is (for /metrics, shared/metrics.py), known without asking the
    broker: ``last_event_at``, the Unix time of the last event handled, by the event's
    own timestamp, and ``lag_s``, how old that event was when it was handled.

    ``on_stored(event, offset, size)``, when given, is called after the handler with the
    size of each event's message: the gateway keeps each tenant's share of the stream
    with it (services/gateway/quota.py).
    """

    def __init__(
        self,
        settings: Settings,
        handler: EventHandler,
        *,
        start: str | int = "first",
        on_stored: StoredHandler | None = None,
    ):
        self.settings = settings
        self.handler = handler
        self.on_stored = on_stored
        self.next_offset: str | int = start
        self.last_offset: int | None = None
        self.last_event_at: float | None = None
        self.lag_s: float | None = None
        self.connected = asyncio.Event()
        self.caught_up = asyncio.Event()
        self._last_delivery = 0.0  # event-loop time
        self._task: asyncio.Task | None = None
        self.problem: str | None = None  # the last reason following failed, until it follows again

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-follower")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def not_ready_because(self) -> str | None:
        """Why this follower is not following the stream now, or None (for ``/readyz``)."""
        if self.connected.is_set():
            return None
        return self.problem or "not following the events stream yet"

    async def _run(self) -> None:
        """Follow forever: every loss is logged with its cause, then followed again after a backoff."""
        failures = 0  # in a row, without having followed in between
        while True:
            try:
                await self._follow_once()
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # stop() asked for it
                # aiormq can surface a connection teardown as CancelledError: that
                # is a lost connection like any other, not a reason to stop following.
                error = "CancelledError from the AMQP client"
            except topology.TopologyRefused as exc:
                error = str(exc)
                log.error("RabbitMQ refused plotfarm's topology", problem=error)
            except Exception as exc:  # noqa: BLE001  (any failure: reconnect and resume)
                error = repr(exc)
            failures = 1 if self.connected.is_set() else failures + 1
            self.connected.clear()
            self.problem = error
            delay = RECONNECT_BACKOFF.delay(failures)
            log.warning(
                "events stream not followed, following again",
                cause=error,
                attempt=failures,
                resume_from=self.next_offset,
                retry_in_s=round(delay, 2),
            )
            await asyncio.sleep(delay)

    async def _follow_once(self) -> None:
        """Follow the stream on one connection until the connection, the channel or the consumer is lost."""
        connection = await amqp_nodes.connect(self.settings, timeout=10)  # the first node that answers
        async with connection:
            lost = asyncio.get_running_loop().create_future()

            def mark_lost(reason: str) -> None:
                if not lost.done():
                    lost.set_result(reason)

            connection.close_callbacks.add(lambda *_: mark_lost("connection closed"))
            channel = await connection.channel()
            channel.close_callbacks.add(lambda *_: mark_lost("channel closed"))
            underlay = await channel.get_underlay_channel()
            # The broker may cancel a consumer (basic.cancel, e.g. when the queue
            # or its member on this node goes away) and keep the connection open;
            # without this the follower would wait forever on a consumer that is gone.
            underlay.on_consumer_cancel_callbacks.add(lambda *_: mark_lost("consumer cancelled by the broker"))
            await channel.set_qos(prefetch_count=self.settings.events_prefetch)
            declared = await topology.declare(channel, self.settings)
            stream = declared.events_stream
            end = await self._end_offset(connection)
            if end is None or (self.last_offset is not None and self.last_offset >= end):
                self.caught_up.set()
            tag = await stream.consume(
                functools.partial(self._on_message, end=end), arguments={"x-stream-offset": self.next_offset}
            )
            self.connected.set()
            self.problem = None
            log.info("following events stream", stream=stream.name, offset=self.next_offset)
            watchdog = asyncio.create_task(self._watch_for_stall(connection, mark_lost))
            try:
                reason = await lost
            finally:
                watchdog.cancel()
                if not channel.is_closed:
                    with contextlib.suppress(Exception):
                        await stream.cancel(tag)
            raise ConnectionError(reason)

    async def _watch_for_stall(self, connection, mark_lost: Callable[[str], None]) -> None:
        """Give up on a consumer that has gone quiet while the stream holds events past it.

        The broker is expected to deliver or cancel, but a consumer attached
        while a restarted stream was still coming up could in principle sit
        silent forever; following again from ``next_offset`` costs nothing, so
        the follower does not rely on the broker for this. While events arrive
        it does nothing; when idle it peeks at one message, every STALL_CHECK_S.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(STALL_CHECK_S)
            if loop.time() - self._last_delivery < STALL_CHECK_S:
                continue
            try:
                pending = await self._peek_unreceived(connection)
            except Exception as exc:  # noqa: BLE001  (the stream or connection is in trouble: follow again)
                mark_lost(f"stall check failed: {exc!r}")
                return
            if pending is None:
                continue
            await asyncio.sleep(STALL_CONFIRM_S)
            if not isinstance(self.next_offset, int) or self.next_offset <= pending:
                mark_lost(f"stalled: event {pending} is in the stream but never arrived")
                return

    async def _peek_unreceived(self, connection) -> int | None:
        """The offset of an event at or after ``next_offset``, or None when the stream has none yet."""
        found = asyncio.get_running_loop().create_future()

        def first(offset: int) -> None:
            if not found.done():
                found.set_result(offset)

        async with self._side_reader(connection, self.next_offset, prefetch=1, on_offset=first):
            try:
                return await asyncio.wait_for(asyncio.shield(found), STALL_PEEK_S)
            except TimeoutError:
                return None

    async def _end_offset(self, connection) -> int | None:
        """The offset of the stream's last message about now, or None when it is empty.

        Consuming from "last" starts at the beginning of the last chunk, so read
        until the deliveries pause, then cancel. While events keep arriving
        there is no pause, so the reading stops after END_OFFSET_READ_S at the
        latest: the answer is then a little past the end, which only delays
        ``caught_up`` by the messages published meanwhile.
        """
        offsets: list[int] = []
        got = asyncio.Event()

        def remember(offset: int) -> None:
            offsets.append(offset)
            got.set()

        async with self._side_reader(connection, "last", prefetch=1000, on_offset=remember):
            deadline = asyncio.get_running_loop().time() + END_OFFSET_READ_S
            while asyncio.get_running_loop().time() < deadline:
                got.clear()
                try:
                    await asyncio.wait_for(got.wait(), END_OFFSET_PAUSE_S)
                except TimeoutError:
                    break
        return max(offsets) if offsets else None

    @contextlib.asynccontextmanager
    async def _side_reader(self, connection, start: str | int, *, prefetch: int, on_offset: Callable[[int], None]):
        """A short-lived second consumer of the stream from ``start``, reporting each delivery's offset.

        Deliveries are acked (never rejected: streams close the connection on
        basic.reject); the consumer and its channel go when the block ends.
        """
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=prefetch)
            stream = await channel.get_queue(topology.Names(self.settings.namespace).events_stream, ensure=False)

            async def report(message: AbstractIncomingMessage) -> None:
                on_offset(int(message.headers["x-stream-offset"]))
                await message.ack()

            tag = await stream.consume(report, arguments={"x-stream-offset": start})
            try:
                yield
            finally:
                await stream.cancel(tag)
        finally:
            await channel.close()

    async def _on_message(self, message: AbstractIncomingMessage, end: int | None) -> None:
        self._last_delivery = asyncio.get_running_loop().time()
        offset = int(message.headers["x-stream-offset"])
        try:
            event = parse_event(message.body)
        except ValueError as exc:
            log.warning("skipping malformed event", offset=offset, error=str(exc))
        else:
            try:
                result = self.handler(event, offset)
                if asyncio.iscoroutine(result):
                    await result
                if self.on_stored is not None:
                    self.on_stored(event, offset, len(message.body))
            except Exception:  # an unacked event would stall the stream after `prefetch` of them
                log.exception("event handler failed, skipping the event", offset=offset, job_id=event.job_id)
            self.last_event_at = event_time(event).timestamp()
            self.lag_s = max(0.0, time.time() - self.last_event_at)
        self.last_offset = offset
        self.next_offset = offset + 1
        await message.ack()
        if end is not None and offset >= end:
            self.caught_up.set()
