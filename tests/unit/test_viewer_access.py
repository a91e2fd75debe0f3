"""A viewer restricted by API key shows each tenant only its own jobs (unit level)."""

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.viewer.access import KEY_COOKIE
from services.viewer.app import create_app
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.messages import JobQueued, RenderResult, utcnow
from shared.settings import Settings


class Follower:
    def __init__(self):
        self.caught_up, self.connected = asyncio.Event(), asyncio.Event()
        self.caught_up.set()
        self.connected.set()

    def not_ready_because(self):
        return None


def finished(job_id: str, tenant: str) -> list:
    return [
        JobQueued(job_id=job_id, code="x", submitted_at=utcnow(), tenant=tenant),
        RenderResult(job_id=job_id, status="done", figures=["<svg/>"], tenant=tenant),
    ]


@pytest.fixture
async def viewer():
    live = LiveJobs(history=100, max_bytes=10**6)
    for offset, event in enumerate(finished("a1", "alpha") + finished("b1", "beta")):
        live.apply(event, offset)
    keys = ApiKeys([("alpha", "alpha-key"), ("beta", "beta-key")])
    settings = Settings(_env_file=None, viewer_require_key=True)
    app = create_app(settings, live, Follower(), AssetStore(settings), keys)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, live
    await client.close()


async def test_without_a_key_the_viewer_refuses(viewer):
    client, _ = viewer
    assert (await client.get("/")).status == 401
    assert (await client.get("/api/jobs/a1")).status == 401
    assert (await client.get("/healthz")).status == 200


async def test_key_in_the_url_becomes_a_cookie_and_leaves_the_address(viewer):
    client, _ = viewer
    response = await client.get("/?key=alpha-key&job=a1", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/?job=a1"
    cookie = response.cookies[KEY_COOKIE]
    assert cookie.value == "alpha-key" and cookie["httponly"] and cookie["samesite"] == "Strict"


async def test_each_tenant_sees_only_its_own_jobs(viewer):
    client, live = viewer
    client.session.cookie_jar.update_cookies({KEY_COOKIE: "alpha-key"})
    assert (await client.get("/api/jobs/a1")).status == 200
    assert (await client.get("/api/jobs/b1")).status == 404
    async with client.ws_connect("/ws") as ws:
        hello = await ws.receive_json(timeout=5)
        assert [job["job_id"] for job in hello["jobs"]] == ["a1"]
        for offset, event in enumerate(finished("b2", "beta") + finished("a2", "alpha"), start=10):
            live.apply(event, offset)
        pushed = {(await ws.receive_json(timeout=5))["job"]["job_id"] for _ in range(2)}
    assert pushed == {"a2"}


async def test_an_unrestricted_viewer_shows_everything():
    live = LiveJobs(history=100, max_bytes=10**6)
    for offset, event in enumerate(finished("a1", "alpha") + finished("b1", "beta")):
        live.apply(event, offset)
    settings = Settings(_env_file=None)
    app = create_app(settings, live, Follower(), AssetStore(settings), ApiKeys([("alpha", "k")]))
    async with TestClient(TestServer(app)) as client:
        async with client.ws_connect("/ws") as ws:
            hello = await ws.receive_json(timeout=5)
    assert {job["job_id"] for job in hello["jobs"]} == {"a1", "b1"}
