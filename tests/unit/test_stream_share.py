"""Each tenant's share of the events stream: the gateway's accounting and its 429 (no broker needed)."""

import random

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_app
from services.gateway.quota import NOBODY, StreamShare, max_age_seconds
from shared.jobs import JobIndex
from shared.messages import JobQueued, JobStarted, RenderResult, utcnow
from shared.settings import Settings
from tests.unit.test_gateway_app import FakeBroker, FakeFollower

MB = 1_000_000
DAY = 86400.0


class Clock:
    def __init__(self, now: float = 1e9):
        self.now = now

    def __call__(self) -> float:
        return self.now


def stream_share(clock=None, **settings) -> StreamShare:
    """A 100 MB stream (5 MB segments), results of at most 1 MB, a quarter of it per tenant."""
    values = {"events_max_bytes": 100 * MB, "max_result_bytes": MB, "tenant_share": 0.25, **settings}
    return StreamShare(Settings(_env_file=None, **values), clock=clock or Clock())


class Feed:
    """Events into a StreamShare, numbered as the stream numbers them."""

    def __init__(self, share: StreamShare):
        self.share, self.offset = share, 0

    def add(self, owner, count: int, size: int = MB, at: float | None = None) -> None:
        for _ in range(count):
            self.share.add(self.offset, owner, size, self.share.clock() if at is None else at)
            self.offset += 1


def test_retained_bytes_are_trimmed_like_the_stream_and_counted_per_tenant():
    """Within one slice of what a byte-exact stream would retain, per tenant; never more than the stream."""
    rng = random.Random(3)
    share = stream_share()
    model: list[list] = []  # [owner, bytes] per event: what a byte-exact stream would retain
    for offset in range(3000):
        owner = rng.choice(["a", "b", None, NOBODY])
        size = rng.randrange(1, 400_000)
        share.add(offset, owner, size, share.clock())
        model.append([owner, size])
        excess = sum(size for _, size in model) - share.max_bytes
        while excess > 0:
            cut = min(excess, model[0][1])
            model[0][1] -= cut
            excess -= cut
            if model[0][1] == 0:
                model.pop(0)
        held = {}
        for owner, size in model:
            held[owner] = held.get(owner, 0) + size
        assert share.total == sum(share.held.values()) <= share.max_bytes
        assert sum(piece.size for piece in share.slices) == share.total
        slack = share.slice_bytes + 400_000  # the oldest slice goes whole; it may end with one event
        for owner in held.keys() | share.held.keys():
            assert held.get(owner, 0) - slack <= share.held.get(owner, 0) <= held.get(owner, 0), owner
    total = share.total
    share.add(2000, "a", MB, share.clock())  # an event read again after a reconnect
    assert share.total == total


def test_memory_is_bounded_however_tenants_interleave():
    """One record per event would be millions for a full stream of small events; slices are at most about 1024."""
    share = stream_share()
    for offset in range(200_000):
        share.add(offset, f"tenant-{offset % 7}", 1000, share.clock())  # every event another tenant's
    assert len(share.slices) <= 1025
    assert 100 * MB - share.slice_bytes <= share.total <= 100 * MB and sum(share.held.values()) == share.total


def test_old_events_leave_the_count_as_they_leave_the_stream():
    clock = Clock()
    share = stream_share(clock)
    feed = Feed(share)
    feed.add("b", 3, at=clock.now)
    feed.add("a", 10, at=clock.now + 2 * DAY)
    clock.now += 7 * DAY + 60  # PLOTFARM_EVENTS_MAX_AGE: 7D
    share.refusal("a")
    assert share.held == {"a": 10 * MB} and share.total == 10 * MB
    assert max_age_seconds("7D") == 7 * DAY and max_age_seconds("12h") == 12 * 3600 and max_age_seconds("1x") is None


def test_a_tenant_over_its_share_may_not_push_another_tenants_results_out():
    clock = Clock()
    share = stream_share(clock)
    feed = Feed(share)
    feed.add("b", 3)  # the oldest results in the stream
    feed.add("a", 97)  # the stream is full
    reason = share.refusal("a")
    assert reason is not None and "share of the events stream" in reason
    assert share.refusal("b") is None  # within its share: never refused
    assert share.refusal("c") is None  # holds nothing
    clock.now += 7 * DAY + 60  # b's results have expired: nothing of others' left to push out
    feed.add("a", 1)
    assert share.refusal("a") is None


def test_a_tenant_over_its_share_may_push_out_its_own_oldest_results():
    share = stream_share()
    feed = Feed(share)
    feed.add("a", 20)
    feed.add("b", 3)
    feed.add("a", 77)  # full: the oldest 20 MB are a's own
    assert share.refusal("a") is None
    feed.add("a", 14)  # the broker dropped a's oldest 14 MB; b's are 6 MB from the front
    assert share.refusal("a") is None
    feed.add("a", 2)  # now b's are within one segment (5 MB) of the front: the next drop would take them
    assert share.held["b"] == 3 * MB
    assert share.refusal("a") is not None


def test_over_its_share_in_a_stream_with_room_is_no_reason():
    share = stream_share()
    feed = Feed(share)
    feed.add("b", 3)
    feed.add("a", 60)  # 60 MB of 100: over its 25 MB, but the stream is not full
    assert share.refusal("a") is None


@pytest.mark.parametrize("tenant", ["solo", None])
def test_a_lone_tenant_is_never_refused(tenant):
    share = stream_share()
    feed = Feed(share)
    for _ in range(300):
        assert share.refusal(tenant) is None
        feed.add(tenant, 1)
        feed.add(NOBODY, 1, size=300)  # its jobs' `running` events: nobody's
    assert share.total > 98 * MB and share.held[tenant] > 97 * MB  # the stream is full, and nearly all of it its


def test_a_jobs_running_event_is_its_tenants():
    share = stream_share()
    for n in range(1000):
        events = [
            JobQueued(job_id=f"j{n}", code="x", submitted_at=utcnow(), tenant="solo"),
            JobStarted(job_id=f"j{n}", renderer_id="r", attempt=1, started_at=utcnow()),
            RenderResult(job_id=f"j{n}", status="done", tenant="solo", figures=["<svg/>"]),
        ]
        for event in events:
            share.add_event(event, 3 * n + events.index(event), len(event.model_dump_json()))
    assert list(share.held) == ["solo"] and not share.in_flight
    # A `running` event read before its job's `queued` one is nobody's.
    share.add_event(JobStarted(job_id="early", renderer_id="r", attempt=1, started_at=utcnow()), 5000, 100)
    assert share.held[NOBODY] == 100


def keyed_settings(**values) -> Settings:
    return Settings(
        _env_file=None,
        api_keys="a=key-a,b=key-b",
        public_gateway_url="http://gw",
        events_max_bytes=100 * MB,
        max_result_bytes=MB,
        **values,
    )


@pytest.fixture
async def keyed_gateway():
    clients = []

    async def make(share: StreamShare):
        app = create_app(keyed_settings(), FakeBroker(), JobIndex(10**6), FakeFollower(), stream_share=share)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_the_gateway_answers_429_with_retry_after_and_says_why(keyed_gateway):
    share = StreamShare(keyed_settings())
    feed = Feed(share)
    feed.add("b", 3)
    feed.add("a", 97)
    client = await keyed_gateway(share)
    for path in ("/api/jobs", "/execute"):
        refused = await client.post(path, json={"code": "x"}, headers={"X-API-Key": "key-a"})
        assert refused.status == 429 and refused.headers["Retry-After"] == "5"
        error = (await refused.json())["error"]
        assert "your results fill your share of the events stream" in error and "other tenants'" in error
    accepted = await client.post("/api/jobs", json={"code": "x"}, headers={"X-API-Key": "key-b"})
    assert accepted.status == 202
