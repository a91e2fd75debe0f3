"""The gateway's HTTP handlers with a fake broker (unit level; the integration tests use the real one)."""

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_app
from shared.broker import BrokerUnavailable
from shared.jobs import JobIndex
from shared.messages import RenderResult
from shared.settings import Settings


class FakeBroker:
    def __init__(self, fail=False):
        self.fail = fail
        self.jobs, self.events = [], []

    def not_ready_because(self):
        return None

    async def publish_job(self, job):
        if self.fail:
            raise BrokerUnavailable("not connected to RabbitMQ")
        self.jobs.append(job)

    async def publish_event(self, event):
        self.events.append(event)


class FakeFollower:
    def __init__(self):
        self.caught_up, self.connected = asyncio.Event(), asyncio.Event()
        self.caught_up.set()
        self.connected.set()

    def not_ready_because(self):
        return None


@pytest.fixture
async def gateway():
    async def make(broker=None):
        settings = Settings(_env_file=None, public_gateway_url="http://gw", public_viewer_url="http://viewer")
        index = JobIndex(10**6)
        app = create_app(settings, broker or FakeBroker(), index, FakeFollower())
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client, index

    clients = []
    yield make
    for client in clients:
        await client.close()


async def test_accepted_job_is_published_and_queued(gateway):
    client, index = await gateway()
    response = await client.post("/api/jobs", json={"code": "print(1)"})
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "queued"
    assert body["status_url"] == f"http://gw/api/jobs/{body['job_id']}"
    assert body["viewer_url"] == f"http://viewer/?job={body['job_id']}"
    assert index.get(body["job_id"]).status == "queued"


async def test_unconfirmed_publish_is_503_and_not_recorded(gateway):
    client, index = await gateway(FakeBroker(fail=True))
    response = await client.post("/api/jobs", json={"code": "print(1)"})
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert "retry" in (await response.json())["error"]
    assert not index.records


async def test_result_and_figure_are_served(gateway):
    client, index = await gateway()
    job_id = (await (await client.post("/api/jobs", json={"code": "x"})).json())["job_id"]
    index.apply(RenderResult(job_id=job_id, status="done", figures=["<svg>a</svg>"], stdout="out"))
    body = await (await client.get(f"/api/jobs/{job_id}")).json()
    assert body["status"] == "done" and body["stdout"] == "out"
    url = f"http://gw/api/jobs/{job_id}/figures/0.svg"
    assert body["figures"] == [{"index": 0, "bytes": 12, "url": url, "files": {"svg": {"bytes": 12, "url": url}}}]
    with_svg = await (await client.get(f"/api/jobs/{job_id}?include=svg")).json()
    assert with_svg["figures"][0]["svg"] == "<svg>a</svg>"
    figure = await client.get(f"/api/jobs/{job_id}/figures/0.svg")
    assert figure.status == 200 and figure.content_type == "image/svg+xml"
    assert "sandbox" in figure.headers["Content-Security-Policy"]
    assert await figure.text() == "<svg>a</svg>"
    missing = await client.get(f"/api/jobs/{job_id}/figures/0.png")  # the job did not ask for PNG
    assert missing.status == 404 and '"formats": ["png"]' in (await missing.json())["error"]


async def test_every_format_is_served_with_its_type_and_a_sandbox(gateway):
    import base64

    client, index = await gateway()
    job_id = (await (await client.post("/api/jobs", json={"code": "x", "formats": ["svg", "png", "html"]})).json())[
        "job_id"
    ]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    spec = {"data": [{"type": "bar", "y": [1]}], "layout": {"title": {"text": "</script><b>t</b>"}}}
    index.apply(RenderResult(job_id=job_id, status="done", figures=[{"svg": "<svg/>", "png": png, "spec": spec}]))
    body = await (await client.get(f"/api/jobs/{job_id}?include=png,json")).json()
    assert set(body["figures"][0]["files"]) == {"svg", "png", "json", "html"}
    assert body["figures"][0]["png"] == png and body["figures"][0]["spec"] == spec
    for fmt, content_type in (("png", "image/png"), ("json", "application/json"), ("html", "text/html")):
        response = await client.get(f"/api/jobs/{job_id}/figures/0.{fmt}")
        assert response.status == 200 and response.content_type == content_type, fmt
        assert "sandbox" in response.headers["Content-Security-Policy"]
    assert await (await client.get(f"/api/jobs/{job_id}/figures/0.png")).read() == base64.b64decode(png)
    page = await (await client.get(f"/api/jobs/{job_id}/figures/0.html")).text()
    assert "</script><b>" not in page and "\\u003c/script" in page  # the title is data, never markup
    assert (
        "connect-src 'none'"
        in (await client.get(f"/api/jobs/{job_id}/figures/0.html")).headers["Content-Security-Policy"]
    )
    bad = await client.get(f"/api/jobs/{job_id}?include=pdf")
    assert bad.status == 400


async def test_long_poll_wakes_on_result(gateway):
    client, index = await gateway()
    job_id = (await (await client.post("/api/jobs", json={"code": "x"})).json())["job_id"]
    poll = asyncio.create_task(client.get(f"/api/jobs/{job_id}?wait=10"))
    await asyncio.sleep(0.1)
    assert not poll.done()
    index.apply(RenderResult(job_id=job_id, status="failed"))
    response = await asyncio.wait_for(poll, 2)
    assert (await response.json())["status"] == "failed"


@pytest.mark.parametrize("wait", ["-1", "abc", "100000"])
async def test_wait_must_be_a_sane_number(gateway, wait):
    client, _ = await gateway()
    job_id = (await (await client.post("/api/jobs", json={"code": "x"})).json())["job_id"]
    assert (await client.get(f"/api/jobs/{job_id}?wait={wait}")).status == 400


async def test_errors_are_json(gateway):
    client, _ = await gateway()
    for method, path, status in [
        ("GET", "/api/jobs/nope", 404),
        ("GET", "/nothing-here", 404),
        ("PUT", "/api/jobs", 405),
    ]:
        response = await client.request(method, path)
        assert response.status == status
        assert "error" in await response.json()
