"""Prometheus metrics: every name plotfarm exposes at ``GET /metrics``, defined here and nowhere else.

One module, so an operator (and the dashboard, deploy/grafana-dashboard.json) finds every
metric, its labels and what it means in one place, and a service cannot invent a name.
Each service makes one of the classes below and serves it::

    gateway  (:3000/metrics)   GatewayMetrics    jobs accepted and refused, queue depths, follower
    viewer   (:8000/metrics)   ViewerMetrics     WebSocket clients, follower
    renderer (:8001/metrics)   RendererMetrics   jobs finished, their timings, the interpreter pool

Every instance has a ``CollectorRegistry`` of its own, not prometheus-client's global one:
tests start several gateways, viewers and renderers in one process, and each must count
only its own jobs (and registering a name twice in one registry is an error).

Three kinds of numbers:

* counted where they happen: accepted (after RabbitMQ's confirm), refused (the answer the
  gateway gave a submission), finished (after the result's confirm and the ack), and the
  job's timings from its :class:`~shared.messages.RenderResult`;
* read at scrape time, by a *refresher* that each scrape awaits (at most
  :data:`SCRAPE_READ_TIMEOUT_S`): the queue depths (a passive queue declare on the broker,
  which answers with the message count) and the renderer page's pool numbers
  (``plotfarm.stats()``). A source that fails or is too slow leaves its metrics out of that
  scrape; it is never a 500 and never a stale number;
* read from objects the service already has: the events follower's position and lag.

Label values come from fixed sets (:data:`REFUSAL_REASONS`, :func:`error_type_label`), so
no job can make up new series.
"""

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable, Iterable

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from shared.page_contract import PoolStats
from shared.vocabulary import ErrorType

log = structlog.get_logger(__name__)

# No ``*_created`` series beside each counter and histogram: Prometheus needs none to see a reset.
disable_created_metrics()

METRICS_PATH = "/metrics"
# The classic text format, which every Prometheus reads (prometheus-client's newer default says 1.0.0).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# How long one scrape waits for a source read at scrape time (the broker, the renderer page).
SCRAPE_READ_TIMEOUT_S = 2.0

# Job durations: from a few ms (an interpreter that was waiting) to the longest time limit and beyond.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

# What the gateway's answer to a refused submission says, by its status (services/gateway/app.py).
REFUSAL_REASONS = {
    400: "validation",
    401: "unauthorized",
    413: "too_large",
    415: "validation",  # not JSON (Content-Type)
    429: "rate_limited",
    503: "broker_unavailable",
}
OTHER = "other"  # any other status or error type: the label stays bounded

# Error types a job's result may carry: Python's own exceptions, and plotfarm's (shared/vocabulary.py).
# Anything else (a class the job's code defined) is "other".
PLOTFARM_ERROR_TYPES = frozenset(ErrorType)
PYTHON_ERROR_TYPES = frozenset(
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
)


def refusal_reason(status: int) -> str:
    return REFUSAL_REASONS.get(status, OTHER)


def error_type_label(error_type: str | None) -> str:
    """``none`` for a job that succeeded, the error type if it is a known one, else ``other``."""
    if not error_type:
        return "none"
    return error_type if error_type in PYTHON_ERROR_TYPES or error_type in PLOTFARM_ERROR_TYPES else OTHER


class _Collect:
    """A collector whose families come from a function, called at every scrape."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]):
        self._collect = collect

    def describe(self) -> list:
        return []  # nothing to check for clashes: the names are this module's own

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class Metrics:
    """One service's registry, the sources it reads at scrape time, and its ``/metrics`` route."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._refreshers: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    def collect_with(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.registry.register(_Collect(collect))

    def refresh_with(self, source: str, refresh: Callable[[], Awaitable[None]]) -> None:
        """``refresh()`` runs before each scrape; it must leave its metrics out when it fails."""
        self._refreshers.append((source, refresh))

    async def _refresh(self, source: str, refresh: Callable[[], Awaitable[None]]) -> bool:
        try:
            await asyncio.wait_for(refresh(), SCRAPE_READ_TIMEOUT_S)
            return True
        except Exception as exc:  # noqa: BLE001  (a source that cannot answer: its metrics are absent, no 500)
            log.info("metrics source unavailable for this scrape", source=source, error=repr(exc)[:300])
            return False

    async def exposition(self) -> bytes:
        """The text format, after every scrape-time source was read (or gave up)."""
        await asyncio.gather(*(self._refresh(source, refresh) for source, refresh in self._refreshers))
        return generate_latest(self.registry)

    async def handle(self, _request: web.Request) -> web.Response:
        return web.Response(body=await self.exposition(), headers={"Content-Type": CONTENT_TYPE})

    def add_route(self, app: web.Application) -> None:
        app.router.add_get(METRICS_PATH, self.handle)

    def watch_follower(self, follower) -> None:
        """The events follower (shared/events.py): where it is in the stream and how far behind.

        ``plotfarm_events_follower_lag_seconds`` is, for the last event it handled, the time
        from the event's own timestamp (queued: submitted_at, running: started_at, result:
        finished_at) to when this follower handled it: seconds while it replays history, a
        few milliseconds when it keeps up. It needs no call to the broker; it compares
        clocks of two hosts, so their skew is in it. ``time() -
        plotfarm_events_follower_last_event_timestamp_seconds`` says how long the stream has
        been quiet (or the follower stuck).
        """

        def collect() -> Iterable[Metric]:
            connected = getattr(follower, "connected", None)
            yield _gauge(
                "plotfarm_events_follower_connected",
                "1 while following the events stream.",
                float(connected.is_set()) if connected is not None else float(follower.not_ready_because() is None),
            )
            yield _gauge(
                "plotfarm_events_follower_caught_up",
                "1 once the replay of the events stream's history is done.",
                float(follower.caught_up.is_set()),
            )
            if (offset := getattr(follower, "last_offset", None)) is not None:
                yield _gauge("plotfarm_events_follower_offset", "Stream offset of the last event handled.", offset)
            if (lag := getattr(follower, "lag_s", None)) is not None:
                yield _gauge(
                    "plotfarm_events_follower_lag_seconds",
                    "Last event handled: from its own timestamp to when this follower handled it.",
                    lag,
                )
            if (stamp := getattr(follower, "last_event_at", None)) is not None:
                yield _gauge(
                    "plotfarm_events_follower_last_event_timestamp_seconds",
                    "Unix time of the last event handled (its own timestamp).",
                    stamp,
                )

        self.collect_with(collect)


def _gauge(name: str, documentation: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    if labels is None:
        return GaugeMetricFamily(name, documentation, value=value)
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


class GatewayMetrics(Metrics):
    """Submissions accepted and refused; the queues' depths, read from RabbitMQ."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs_accepted = Counter(
            "plotfarm_jobs_accepted", "Jobs RabbitMQ confirmed (answered 202).", registry=self.registry
        )
        self.jobs_refused = Counter(
            "plotfarm_jobs_refused", "Job submissions refused, by reason.", ["reason"], registry=self.registry
        )
        for reason in (*REFUSAL_REASONS.values(), OTHER):
            self.jobs_refused.labels(reason)  # every series exists from the start, at 0
        self._depths: dict[str, tuple[int, int]] | None = None
        self._channel = None

    def refused(self, status: int) -> None:
        self.jobs_refused.labels(refusal_reason(status)).inc()

    def watch_queues(self, broker, names) -> None:
        """The jobs and dead-letter queues' depths at each scrape (``names``: shared.topology.Names).

        A passive ``queue.declare`` answers with the queue's ready messages (not those
        renderers hold unacked) and its consumers. It runs on a channel of its own, since a
        refused declare closes the channel it ran on; with no broker, the gauges are absent.
        """
        queues = {"jobs": names.jobs_queue, "dead_letter": names.dead_letter_queue}

        async def refresh() -> None:
            self._depths = None
            if broker.not_ready_because() is not None:
                return
            try:
                channel = await self._metrics_channel(broker)
                depths = {}
                for label, queue in queues.items():
                    declared = await channel.queue_declare(queue, passive=True, timeout=SCRAPE_READ_TIMEOUT_S)
                    depths[label] = (declared.message_count, declared.consumer_count)
            except BaseException:
                self._drop_channel()
                raise
            self._depths = depths

        def collect() -> Iterable[Metric]:
            if self._depths is None:
                return
            messages = GaugeMetricFamily(
                "plotfarm_queue_messages", "Messages ready in the queue (RabbitMQ's count).", labels=["queue"]
            )
            consumers = GaugeMetricFamily("plotfarm_queue_consumers", "Consumers of the queue.", labels=["queue"])
            for label, (count, consumer_count) in self._depths.items():
                messages.add_metric([label], count)
                consumers.add_metric([label], consumer_count)
            yield messages
            yield consumers

        self.refresh_with("broker queues", refresh)
        self.collect_with(collect)

    async def _metrics_channel(self, broker):
        if self._channel is None or self._channel.is_closed:
            channel = await broker.connection.channel()
            self._channel = channel
        return await self._channel.get_underlay_channel()  # aiormq's: its declare caches nothing

    def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            task = asyncio.get_running_loop().create_task(_close_quietly(channel))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Task] = set()


async def _close_quietly(channel) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(channel.close(), SCRAPE_READ_TIMEOUT_S)


class ViewerMetrics(Metrics):
    """Open WebSockets (and the follower, :meth:`Metrics.watch_follower`)."""

    def __init__(self) -> None:
        super().__init__()
        self.websocket_clients = Gauge(
            "plotfarm_websocket_clients", "Open WebSocket connections of live pages.", registry=self.registry
        )


# The page's pool numbers (web/renderer/renderer.mjs poolStats, shared/page_contract.py PoolStats):
# those that only grow while one page lives, and those that are a count now.
POOL_COUNTERS = PoolStats.metrics("counter")
POOL_GAUGES = PoolStats.metrics("gauge")


def pooled(pages: list[dict]) -> dict:
    """Several pages' numbers (renderer.mjs poolStats) as one pool's: gauges added, restore times pooled."""
    total = {key: sum(page.get(key) or 0 for page in pages) for key in (*POOL_COUNTERS, *POOL_GAUGES)}
    recent = sorted(ms for page in pages for ms in page.get("recentRestoreMs") or [] if isinstance(ms, int | float))

    def pick(q: float) -> float | None:
        return recent[min(len(recent) - 1, round(q * (len(recent) - 1)))] if recent else None

    quantiles = {"restoreMsMedian": pick(0.5), "restoreMsP95": pick(0.95)}
    if len(pages) == 1:  # one page: its own numbers
        quantiles = {key: pages[0].get(key) for key in quantiles}
    return {**total, **quantiles, "snapshotMs": pages[0].get("snapshotMs")}


class PoolCounters:
    """The page's counters, kept growing across page replacements (a new page starts at 0).

    A replacement is seen as a new page object or a counter that went down; what the old
    page counted after the last scrape before it went is lost, as for any process restart.
    """

    def __init__(self) -> None:
        self.base: dict[str, float] = dict.fromkeys(POOL_COUNTERS, 0.0)
        self.last: dict[str, float] = dict.fromkeys(POOL_COUNTERS, 0.0)
        self._page = None

    def update(self, page, stats: dict) -> None:
        if page is not self._page or any(
            isinstance(stats.get(key), int | float) and stats[key] < self.last[key] for key in POOL_COUNTERS
        ):  # another page: what the last one counted stays counted
            for key in POOL_COUNTERS:
                self.base[key] += self.last[key]
                self.last[key] = 0.0
            self._page = page
        for key in POOL_COUNTERS:
            if isinstance(value := stats.get(key), int | float):
                self.last[key] = value

    def total(self, key: str) -> float:
        return self.base[key] + self.last[key]


class RendererMetrics(Metrics):
    """Jobs finished and handed back, their timings, and the interpreter pool."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.jobs_finished = Counter(
            "plotfarm_jobs_finished",
            "Jobs whose result RabbitMQ confirmed (then acked), by status and error type.",
            ["status", "error_type"],
            registry=r,
        )
        self.jobs_finished.labels("done", "none")
        self.jobs_handed_back = Counter(
            "plotfarm_jobs_handed_back",
            "Jobs returned to the queue for another try, by why.",
            ["reason"],
            registry=r,
        )
        for reason in ("interpreter_crashed", "result_unconfirmed"):
            self.jobs_handed_back.labels(reason)

        def histogram(name: str, documentation: str) -> Histogram:
            return Histogram(name, documentation, buckets=DURATION_BUCKETS, registry=r)

        self.queue_wait = histogram(
            "plotfarm_job_queue_wait_seconds", "From the gateway's accept to a renderer taking the job."
        )
        self.interpreter_wait = histogram(
            "plotfarm_job_interpreter_wait_seconds", "Waiting on the page for a fresh interpreter."
        )
        self.package_load = histogram("plotfarm_job_package_load_seconds", "Loading packages the code imports.")
        self.run = histogram("plotfarm_job_run_seconds", "Running the job's code.")
        self.svg = histogram("plotfarm_job_svg_seconds", "Turning the figures into SVG (and the other formats).")
        self.total = histogram("plotfarm_job_total_seconds", "From the gateway's accept to the result.")
        self._pool: dict | None = None

    def finished(self, result, *, ran: bool = True) -> None:
        """A result confirmed and acked; ``ran``: it came from the page (a dead letter never ran)."""
        self.jobs_finished.labels(result.status, error_type_label(result.error.type if result.error else None)).inc()
        timings = result.timings
        if ran:
            self.queue_wait.observe(timings.queued_ms / 1000)
            self.interpreter_wait.observe(timings.wait_ms / 1000)
            self.package_load.observe(timings.load_ms / 1000)
            self.run.observe(timings.run_ms / 1000)
            self.svg.observe(timings.svg_ms / 1000)
        self.total.observe(timings.total_ms / 1000)

    def handed_back(self, reason: str) -> None:
        self.jobs_handed_back.labels(reason).inc()

    def watch_consumer(self, consumer) -> None:
        in_flight = Gauge("plotfarm_jobs_in_flight", "Jobs this renderer is working on.", registry=self.registry)
        in_flight.set_function(lambda: consumer.in_flight)

    def watch_pool(self, pool) -> None:
        """The pool's numbers, read from each of its pages (``plotfarm.stats()``) at each scrape.

        ``pool.pages`` are the renderer's pages (services/renderer/pages.py), each
        with its ``page`` (replaced when it is lost) and its ``stats()``. A page
        keeps its last 200 restore times (``recentRestoreMs``) and counts all of them
        (``restores``); each scrape observes the ones it has not seen into a real
        histogram. Restores beyond 200 between two scrapes are counted but not timed.
        """
        restore = Histogram(
            "plotfarm_interpreter_restore_seconds",
            "Time to restore a fresh interpreter from the snapshot.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        counters: dict[int, PoolCounters] = {}
        seen: dict[int, dict] = {}

        def observe_new_restores(number: int, page, stats: dict) -> None:
            restores, recent = stats.get("restores"), stats.get("recentRestoreMs")
            if not isinstance(restores, int) or not isinstance(recent, list):
                return
            last = seen.setdefault(number, {"page": None, "restores": 0})
            if page is not last["page"] or restores < last["restores"]:  # a new page counts from 0
                last.update(page=page, restores=0)
            new = min(restores - last["restores"], len(recent))
            for ms in recent[len(recent) - new :] if new > 0 else []:
                restore.observe(ms / 1000)
            last["restores"] = restores

        async def refresh() -> None:
            self._pool = None
            read = []
            for number, page in enumerate(pool.pages):
                try:
                    stats = await page.stats()
                except Exception:  # noqa: BLE001  (a page being replaced: its gauges are absent)
                    continue
                if stats:
                    counters.setdefault(number, PoolCounters()).update(page.page, stats)
                    observe_new_restores(number, page.page, stats)
                    read.append(stats)
            if read:
                self._pool = pooled(read)

        def collect() -> Iterable[Metric]:
            for key, (name, documentation) in POOL_COUNTERS.items():
                yield CounterMetricFamily(name, documentation, value=sum(page.total(key) for page in counters.values()))
            if self._pool is None:
                return
            for key, (name, documentation) in POOL_GAUGES.items():
                if isinstance(value := self._pool.get(key), int | float):
                    yield _gauge(name, documentation, value)
            recent = GaugeMetricFamily(
                "plotfarm_interpreter_restore_recent_seconds",
                "Time to restore an interpreter, over each page's last 200 restores, by quantile.",
                labels=["quantile"],
            )
            for quantile, key in (("0.5", "restoreMsMedian"), ("0.95", "restoreMsP95")):
                if isinstance(value := self._pool.get(key), int | float):
                    recent.add_metric([quantile], value / 1000)
            if recent.samples:
                yield recent
            if isinstance(value := self._pool.get("snapshotMs"), int | float) and value:
                yield _gauge(
                    "plotfarm_interpreter_snapshot_seconds",
                    "Time the first page took to make its snapshot.",
                    value / 1000,
                )

        self.refresh_with("renderer page", refresh)
        self.collect_with(collect)
