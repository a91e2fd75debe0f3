"""/metrics on the gateway, the viewer and the renderer, with fakes (the real stack: tests/integration/test_metrics.py)."""

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.app import METRICS as GATEWAY_METRICS
from services.gateway.app import create_app as create_gateway
from services.renderer.consumer import JobConsumer
from services.viewer.app import create_app as create_viewer
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.broker import BrokerUnavailable
from shared.events import EventFollower
from shared.jobs import JobIndex
from shared.messages import JobError, JobQueued, JobStarted, RenderResult, Timings, utcnow
from shared.metrics import (
    CONTENT_TYPE,
    GatewayMetrics,
    PoolCounters,
    RendererMetrics,
    ViewerMetrics,
    error_type_label,
    refusal_reason,
)
from shared.settings import Settings
from shared.topology import Names

NAMESPACE = "unit-metrics"


def parse(text: str) -> dict[str, list]:
    """Every sample by its name (``plotfarm_jobs_refused_total``, ``..._bucket``, ...)."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict, name: str, **labels) -> float:
    matching = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (name, labels, samples.get(name))
    return matching[0]


class Follower:
    def __init__(self):
        self.caught_up, self.connected = asyncio.Event(), asyncio.Event()
        self.caught_up.set()
        self.connected.set()
        self.last_offset, self.lag_s, self.last_event_at = 41, 0.25, 1_700_000_000.0

    def not_ready_because(self):
        return None


class Queues:
    """RabbitMQ's answer to a passive declare: a queue's ready messages and consumers."""

    def __init__(self, counts: dict[str, tuple[int, int]], hang: bool = False):
        self.counts, self.hang, self.is_closed = counts, hang, False

    async def get_underlay_channel(self):
        return self

    async def queue_declare(self, queue, *, passive, timeout):
        assert passive
        if self.hang:
            await asyncio.sleep(60)
        messages, consumers = self.counts[queue]
        return SimpleNamespace(message_count=messages, consumer_count=consumers)

    async def close(self):
        self.is_closed = True


class Broker:
    def __init__(self, fail=False, queues: Queues | None = None):
        self.fail, self.queues = fail, queues
        if queues is not None:
            self.connection = SimpleNamespace(channel=self._channel)

    async def _channel(self):
        return self.queues

    def not_ready_because(self):
        return "not connected" if self.fail else None

    async def publish_job(self, job):
        if self.fail:
            raise BrokerUnavailable("not connected to RabbitMQ")

    async def publish_event(self, event):
        pass


@pytest.fixture
async def serve():
    clients = []

    async def start(app):
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def gateway_settings(**fields) -> Settings:
    return Settings(_env_file=None, namespace=NAMESPACE, public_gateway_url="http://gw", **fields)


async def scrape(client, path: str = "/metrics") -> dict:
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    return parse(await response.text())


async def test_the_gateway_counts_accepted_and_every_refusal_by_its_reason(serve):
    client = await serve(
        create_gateway(gateway_settings(max_code_bytes=100, max_wait_s=1), Broker(), JobIndex(10**6), Follower())
    )
    assert (await client.post("/api/jobs", json={"code": "x"})).status == 202
    assert (await client.post("/execute", json={"code": "x"})).status == 202  # not finished in 1 s
    assert (await client.post("/api/jobs", json={"code": ""})).status == 400
    assert (
        await client.post("/api/jobs", data=b"{not json", headers={"Content-Type": "application/json"})
    ).status == 400
    assert (await client.post("/api/jobs", json={"code": "x" * 101})).status == 413
    assert (await client.get("/api/jobs/nope?wait=-1")).status == 400  # not a submission: not counted
    samples = await scrape(client)
    assert value(samples, "plotfarm_jobs_accepted_total") == 2
    assert value(samples, "plotfarm_jobs_refused_total", reason="validation") == 2
    assert value(samples, "plotfarm_jobs_refused_total", reason="too_large") == 1
    for reason in ("unauthorized", "rate_limited", "broker_unavailable", "other"):
        assert value(samples, "plotfarm_jobs_refused_total", reason=reason) == 0  # present from the start

    unavailable = await serve(create_gateway(gateway_settings(), Broker(fail=True), JobIndex(10**6), Follower()))
    assert (await unavailable.post("/api/jobs", json={"code": "x"})).status == 503
    assert value(await scrape(unavailable), "plotfarm_jobs_refused_total", reason="broker_unavailable") == 1

    keyed = gateway_settings(api_keys="team=k", rate_limit_per_minute=1, rate_limit_burst=1)
    guarded = await serve(create_gateway(keyed, Broker(), JobIndex(10**6), Follower()))
    assert (await guarded.post("/api/jobs", json={"code": "x"})).status == 401
    assert (await guarded.post("/api/jobs", json={"code": "x"}, headers={"X-API-Key": "k"})).status == 202
    assert (await guarded.post("/api/jobs", json={"code": "x"}, headers={"X-API-Key": "k"})).status == 429
    samples = await scrape(guarded)  # public, like /healthz, though keys are on
    assert value(samples, "plotfarm_jobs_refused_total", reason="unauthorized") == 1
    assert value(samples, "plotfarm_jobs_refused_total", reason="rate_limited") == 1
    assert value(samples, "plotfarm_jobs_accepted_total") == 1


async def test_queue_depths_come_from_the_broker_and_are_absent_without_one(serve):
    names = Names(NAMESPACE)
    queues = Queues({names.jobs_queue: (7, 2), names.dead_letter_queue: (1, 2)})
    client = await serve(create_gateway(gateway_settings(), Broker(queues=queues), JobIndex(10**6), Follower()))
    samples = await scrape(client)
    assert value(samples, "plotfarm_queue_messages", queue="jobs") == 7
    assert value(samples, "plotfarm_queue_messages", queue="dead_letter") == 1
    assert value(samples, "plotfarm_queue_consumers", queue="jobs") == 2
    assert value(samples, "plotfarm_events_follower_lag_seconds") == 0.25
    assert value(samples, "plotfarm_events_follower_offset") == 41
    assert value(samples, "plotfarm_events_follower_caught_up") == 1

    down = await serve(create_gateway(gateway_settings(), Broker(fail=True), JobIndex(10**6), Follower()))
    assert "plotfarm_queue_messages" not in await scrape(down)


async def test_a_broker_that_does_not_answer_delays_the_scrape_only_briefly(serve, monkeypatch):
    monkeypatch.setattr("shared.metrics.SCRAPE_READ_TIMEOUT_S", 0.2)
    hanging = Broker(queues=Queues({}, hang=True))
    client = await serve(create_gateway(gateway_settings(), hanging, JobIndex(10**6), Follower()))
    started = time.monotonic()
    samples = await scrape(client)
    assert time.monotonic() - started < 5
    assert "plotfarm_queue_messages" not in samples and "plotfarm_jobs_accepted_total" in samples


async def test_each_app_has_its_own_registry(serve):
    first = create_gateway(gateway_settings(), Broker(), JobIndex(10**6), Follower())
    second = create_gateway(gateway_settings(), Broker(), JobIndex(10**6), Follower())
    first[GATEWAY_METRICS].jobs_accepted.inc(3)
    assert value(await scrape(await serve(second)), "plotfarm_jobs_accepted_total") == 0
    assert value(await scrape(await serve(first)), "plotfarm_jobs_accepted_total") == 3
    GatewayMetrics(), GatewayMetrics()  # no clash in prometheus-client's global registry either


async def test_the_viewer_counts_open_websockets(serve):
    settings = Settings(_env_file=None, viewer_require_key=True)
    live = LiveJobs(history=10, max_bytes=10**6)
    client = await serve(create_viewer(settings, live, Follower(), AssetStore(settings), ApiKeys([("a", "key")])))
    assert value(await scrape(client), "plotfarm_websocket_clients") == 0  # needs no key
    sockets = [await client.ws_connect("/ws", headers={"X-API-Key": "key"}) for _ in range(2)]
    for ws in sockets:
        assert (await ws.receive_json())["type"] == "hello"
    samples = await scrape(client)
    assert value(samples, "plotfarm_websocket_clients") == 2
    assert value(samples, "plotfarm_events_follower_connected") == 1
    await sockets[0].close()
    for _ in range(50):
        if value(await scrape(client), "plotfarm_websocket_clients") == 1:
            break
        await asyncio.sleep(0.05)
    assert value(await scrape(client), "plotfarm_websocket_clients") == 1
    await sockets[1].close()


class Message:
    def __init__(self, offset: int, event):
        self.headers = {"x-stream-offset": offset}
        self.body = event.model_dump_json().encode()

    async def ack(self):
        pass


async def test_the_follower_knows_how_old_each_event_was_when_it_handled_it():
    follower = EventFollower(Settings(_env_file=None), lambda event, offset: None)
    assert follower.lag_s is None and follower.last_event_at is None
    old = utcnow().timestamp() - 30
    started = JobStarted(job_id="a", renderer_id="r", attempt=1, started_at=datetime.fromtimestamp(old, UTC))
    await follower._on_message(Message(3, started), end=None)
    assert follower.last_event_at == pytest.approx(old) and 29 < follower.lag_s < 40
    await follower._on_message(Message(4, JobQueued(job_id="b", code="x", submitted_at=utcnow())), end=None)
    assert follower.lag_s < 5 and follower.last_offset == 4
    await follower._on_message(Message(5, RenderResult(job_id="a", status="done")), end=None)
    assert follower.lag_s < 5


def test_labels_come_from_fixed_sets():
    assert [refusal_reason(s) for s in (400, 401, 413, 429, 503, 500, 418)] == [
        "validation",
        "unauthorized",
        "too_large",
        "rate_limited",
        "broker_unavailable",
        "other",
        "other",
    ]
    assert error_type_label(None) == "none"
    assert error_type_label("ValueError") == "ValueError"
    assert error_type_label("ModuleNotFoundError") == "ModuleNotFoundError"
    assert error_type_label("OutputLimitExceeded") == "OutputLimitExceeded"
    assert error_type_label("MyOwnErrorNumber12345") == "other"  # a class the job defined: no new series


def result(status="done", error_type=None, **timings) -> RenderResult:
    error = JobError(type=error_type, message="m") if error_type else None
    return RenderResult(job_id="j", status=status, error=error, timings=Timings(**timings))


async def scrape_metrics(metrics) -> dict:
    return parse((await metrics.exposition()).decode())


async def test_the_renderer_counts_finished_jobs_and_their_timings():
    metrics = RendererMetrics()
    metrics.finished(result(queued_ms=120, wait_ms=2, run_ms=1500, svg_ms=40, total_ms=1700))
    metrics.finished(result("failed", "ValueError", run_ms=5, total_ms=30))
    metrics.finished(result("failed", "RendererCrashed", total_ms=9000), ran=False)  # a dead letter
    metrics.handed_back("interpreter_crashed")
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_jobs_finished_total", status="done", error_type="none") == 1
    assert value(samples, "plotfarm_jobs_finished_total", status="failed", error_type="ValueError") == 1
    assert value(samples, "plotfarm_jobs_finished_total", status="failed", error_type="RendererCrashed") == 1
    assert value(samples, "plotfarm_jobs_handed_back_total", reason="interpreter_crashed") == 1
    assert value(samples, "plotfarm_job_run_seconds_count") == 2
    assert value(samples, "plotfarm_job_run_seconds_sum") == pytest.approx(1.505)
    assert value(samples, "plotfarm_job_run_seconds_bucket", le="2.5") == 2
    assert value(samples, "plotfarm_job_run_seconds_bucket", le="1.0") == 1
    assert value(samples, "plotfarm_job_queue_wait_seconds_sum") == pytest.approx(0.12)
    assert value(samples, "plotfarm_job_total_seconds_count") == 3
    assert value(samples, "plotfarm_job_svg_seconds_count") == 2


class Pool:
    """The renderer's PagePool as metrics see it: its pages."""

    def __init__(self, *pages):
        self.pages = list(pages)


class Page:
    """RendererPage's pool numbers (web/renderer/renderer.mjs poolStats); ``page`` changes when it is replaced."""

    def __init__(self):
        self.page = object()
        self.numbers = {"fresh": 2, "restoring": 1, "waiting": 0, "reusable": 0, "restores": 5, "restoreFailures": 0}
        self.numbers |= {"discarded": 3, "reused": 0, "snapshotMs": 4000.0, "restoreMsMedian": 450, "restoreMsP95": 700}
        self.numbers |= {"recentRestoreMs": [300, 400, 450, 700, 800]}
        self.fail = False

    async def stats(self):
        if self.fail:
            raise RuntimeError("Target page, context or browser has been closed")
        return dict(self.numbers)


async def test_the_pool_numbers_are_read_from_the_page_at_each_scrape():
    page, metrics = Page(), RendererMetrics()
    metrics.watch_pool(Pool(page))
    metrics.watch_consumer(SimpleNamespace(in_flight=1))
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_interpreters_spare") == 2
    assert value(samples, "plotfarm_interpreters_restoring") == 1
    assert value(samples, "plotfarm_interpreter_restores_total") == 5
    assert value(samples, "plotfarm_interpreters_discarded_total") == 3
    assert value(samples, "plotfarm_interpreter_restore_recent_seconds", quantile="0.95") == 0.7
    assert value(samples, "plotfarm_jobs_in_flight") == 1

    page.page, page.numbers["restores"], page.numbers["discarded"] = object(), 2, 0  # the page was replaced
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_interpreter_restores_total") == 7  # still counting up
    assert value(samples, "plotfarm_interpreters_discarded_total") == 3

    page.fail = True  # the page is going: its gauges are absent, the counters keep what they had
    samples = await scrape_metrics(metrics)
    assert "plotfarm_interpreters_spare" not in samples
    assert value(samples, "plotfarm_interpreter_restores_total") == 7


async def test_each_restore_is_observed_once_into_the_restore_histogram():
    page, metrics = Page(), RendererMetrics()
    metrics.watch_pool(Pool(page))
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_interpreter_restore_seconds_count") == 5
    assert value(samples, "plotfarm_interpreter_restore_seconds_sum") == pytest.approx(2.65)
    samples = await scrape_metrics(metrics)  # nothing new: nothing observed twice
    assert value(samples, "plotfarm_interpreter_restore_seconds_count") == 5
    page.numbers["restores"], page.numbers["recentRestoreMs"] = 7, [450, 700, 800, 1200, 2600]
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_interpreter_restore_seconds_count") == 7
    assert value(samples, "plotfarm_interpreter_restore_seconds_sum") == pytest.approx(6.45)
    page.page, page.numbers["restores"], page.numbers["recentRestoreMs"] = object(), 1, [900]  # a new page
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_interpreter_restore_seconds_count") == 8


def test_pool_counters_survive_a_page_that_starts_again_from_zero():
    counters, page = PoolCounters(), object()
    counters.update(page, {"restores": 4})
    counters.update(page, {"restores": 6})
    counters.update(page, {"restores": 1})  # same object, counter went down: a new page
    assert counters.total("restores") == 7
    counters.update(page, {"restores": 3})
    assert counters.total("restores") == 9


async def test_the_consumer_counts_a_result_once_it_is_confirmed_and_acked():
    class Ack:
        headers, message_id = {}, "m"

        async def ack(self):
            pass

        async def nack(self, requeue):
            pass

    class Publisher:
        fail = False

        async def publish_event(self, event):
            if self.fail:
                raise BrokerUnavailable("no confirm")

    broker = Publisher()
    consumer = JobConsumer(Settings(_env_file=None, result_publish_attempts=1), broker, pages=None)
    await consumer._publish_and_ack(result(run_ms=10, total_ms=20), Ack())
    broker.fail = True
    await consumer._publish_and_ack(result(run_ms=10, total_ms=20), Ack())
    samples = await scrape_metrics(consumer.metrics)
    assert value(samples, "plotfarm_jobs_finished_total", status="done", error_type="none") == 1
    assert value(samples, "plotfarm_jobs_handed_back_total", reason="result_unconfirmed") == 1


async def test_the_dashboard_asks_only_for_metrics_that_exist():
    """deploy/grafana-dashboard.json: valid JSON, and every plotfarm_ name in it is one a service exposes."""
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    asked = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            asked |= set(re.findall(r"plotfarm_[a-z_]+", target["expr"]))
    assert asked

    names = Names(NAMESPACE)
    gateway = GatewayMetrics()
    gateway.watch_queues(Broker(queues=Queues({names.jobs_queue: (0, 0), names.dead_letter_queue: (0, 0)})), names)
    gateway.watch_follower(Follower())
    renderer = RendererMetrics()
    renderer.watch_pool(Pool(Page()))
    renderer.watch_consumer(SimpleNamespace(in_flight=0))
    renderer.finished(result())
    viewer = ViewerMetrics()
    exposed = set()
    for metrics in (gateway, renderer, viewer):
        exposed |= set(await scrape_metrics(metrics))
    assert asked <= exposed, asked - exposed


async def test_the_pool_numbers_of_several_pages_add_up():
    first, second, metrics = Page(), Page(), RendererMetrics()
    second.numbers |= {"fresh": 1, "restores": 3, "recentRestoreMs": [100, 200, 300]}
    metrics.watch_pool(Pool(first, second))
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_interpreters_spare") == 3
    assert value(samples, "plotfarm_interpreter_restores_total") == 8
    assert value(samples, "plotfarm_interpreter_restore_seconds_count") == 8
    second.page, second.numbers["restores"] = object(), 1  # the second page was replaced
    samples = await scrape_metrics(metrics)
    assert value(samples, "plotfarm_interpreter_restores_total") == 9
    second.fail = True  # being replaced: the first page's gauges alone
    samples = await scrape_metrics(metrics)
    assert (
        value(samples, "plotfarm_interpreters_spare") == 2
        and value(samples, "plotfarm_interpreter_restores_total") == 9
    )
