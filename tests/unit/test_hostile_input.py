"""Hostile bodies, paths and queries get a JSON 4xx from the gateway and the viewer, never a 500.

Each case here once raised inside a handler (RecursionError, ValueError from Python's limit
on integer digits, ...) and came back as aiohttp's plain-text 500. The last-resort
middleware is for our own bugs: it is tested with a handler that fails on purpose.
"""

import json

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_app as create_gateway
from services.viewer.app import create_app as create_viewer
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.jobs import JobIndex
from shared.messages import JobQueued, RenderResult, utcnow
from shared.settings import Settings
from tests.unit.test_gateway_app import FakeBroker, FakeFollower

JSON = {"Content-Type": "application/json"}
HUGE = "9" * 5000  # beyond Python's 4300-digit limit on int(str)
DEEP = b'{"code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.fixture
async def gateway():
    settings = Settings(_env_file=None, public_gateway_url="http://gw", public_viewer_url="http://viewer", max_wait_s=1)
    index = JobIndex(10**6)
    app = create_gateway(settings, FakeBroker(), index, FakeFollower())
    async with TestClient(TestServer(app)) as client:
        yield client, index, app


@pytest.fixture
async def viewer():
    live = LiveJobs(history=100, max_bytes=10**6)
    live.apply(JobQueued(job_id="a1", code="x", submitted_at=utcnow()), 0)
    live.apply(RenderResult(job_id="a1", status="done", figures=["<svg/>"]), 1)
    settings = Settings(_env_file=None)
    app = create_viewer(settings, live, FakeFollower(), AssetStore(settings), ApiKeys([]))
    async with TestClient(TestServer(app)) as client:
        yield client, app


async def json_error(response, status: int) -> dict:
    assert response.status == status, (response.status, await response.text())
    assert response.content_type == "application/json", await response.text()
    body = await response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.mark.parametrize("path", ["/api/jobs", "/execute"])
@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b"[" * 100_000,
        b"[" * 1_000_000,  # large enough to be checked in a thread (app.CHECK_IN_THREAD_BYTES)
        b'{"code": "x", "variables": {"v": ' + b"[" * 500_000 + b"]" * 500_000 + b"}}",
        b'{"code": "x", "width": ' + HUGE.encode() + b"}",
        b'{"code": "x", "timeout_s": -' + HUGE.encode() + b"}",
        b'{"code": "x", "width": 1' + b"0" * 400 + b".0}",  # a float beyond int range after _json_number
        b'{"code": "x", "width": 1e999}',
        b'{"code": "x", "width": NaN}',
        b'{"code": "x", "scale": Infinity}',
        b'{"code": "x", "formats": ' + b'["svg",' * 50_000 + b"}",
        b'{"code": "\\ud800"}',
        b"\xff\xfe{\x00}\x00",
        b'{"code": "x"' + b', "code": "y"' * 3 + b"}",
        b"",
    ],
)
async def test_hostile_job_bodies_are_400(gateway, path, body):
    client, _, _ = gateway
    response = await client.post(path, data=body, headers=JSON)
    assert response.status < 500
    await json_error(response, response.status)
    assert 400 <= response.status < 500


async def test_a_name_twice_is_refused_and_a_byte_order_mark_tolerated(gateway):
    client, _, _ = gateway
    twice = await client.post("/api/jobs", data=b'{"code": "x", "code": "y"}', headers=JSON)
    assert "more than once" in (await json_error(twice, 400))["error"]
    assert (await client.post("/api/jobs", data=b'\xef\xbb\xbf{"code": "x"}', headers=JSON)).status == 202


@pytest.mark.parametrize(
    "index",
    [HUGE, "0" * 5000 + "1", "99999999999999999999", "\u0661" * 1300, "\u0663", "\uff10", "\u00b2"],
)
async def test_huge_or_odd_figure_indexes_are_404(gateway, index):
    client, index_, _ = gateway
    job_id = (await (await client.post("/api/jobs", json={"code": "x"})).json())["job_id"]
    index_.apply(RenderResult(job_id=job_id, status="done", figures=["<svg/>"]))
    response = await client.get(f"/api/jobs/{job_id}/figures/{index}.svg")
    await json_error(response, 404)


async def test_a_plain_figure_index_still_works(gateway):
    client, index, _ = gateway
    job_id = (await (await client.post("/api/jobs", json={"code": "x"})).json())["job_id"]
    index.apply(RenderResult(job_id=job_id, status="done", figures=["<svg>0</svg>", "<svg>1</svg>"]))
    assert await (await client.get(f"/api/jobs/{job_id}/figures/1.svg")).text() == "<svg>1</svg>"
    assert await (await client.get(f"/api/jobs/{job_id}/figures/00.svg")).text() == "<svg>0</svg>"
    await json_error(await client.get(f"/api/jobs/{job_id}/figures/2.svg"), 404)


@pytest.mark.parametrize("wait", [HUGE, "1e999", "nan", "-nan", "inf", "-0x1", "１", "1_0", "", " 1"])
async def test_odd_waits_are_400(gateway, wait):
    client, _, _ = gateway
    job_id = (await (await client.post("/api/jobs", json={"code": "x"})).json())["job_id"]
    response = await client.get(f"/api/jobs/{job_id}", params={"wait": wait})
    await json_error(response, 400)


@pytest.mark.parametrize("index", [HUGE, "\u0661" * 1300, "\u00b2", "99999999999999999999"])
@pytest.mark.parametrize("fmt", ["svg", "png"])
async def test_viewer_figure_indexes_are_bounded(viewer, index, fmt):
    client, _ = viewer
    assert (await client.get("/api/jobs/a1/figures/0.svg")).status == 200
    await json_error(await client.get(f"/api/jobs/a1/figures/{index}.{fmt}"), 404)


@pytest.mark.parametrize("since", [HUGE, "-" + HUGE, "\u00b2", "\u0661", "1e3", "abc", "-2", "0x10"])
async def test_viewer_since_must_be_an_offset(viewer, since):
    client, _ = viewer
    response = await client.get("/ws", params={"since": since})
    await json_error(response, 400)


@pytest.mark.parametrize("since", ["-1", "0", "5", str(2**63 - 1)])
async def test_viewer_since_takes_real_offsets(viewer, since):
    client, _ = viewer
    async with client.ws_connect("/ws", params={"since": since}) as ws:
        hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello" and hello["resumed"] is True


async def test_viewer_errors_are_json(viewer):
    client, _ = viewer
    await json_error(await client.get("/no-such-page"), 404)
    await json_error(await client.post("/"), 405)


async def _boom(_request: web.Request) -> web.Response:
    raise KeyError("a bug of ours")


def _gateway_app() -> web.Application:
    settings = Settings(_env_file=None, public_gateway_url="http://gw", public_viewer_url="http://viewer")
    return create_gateway(settings, FakeBroker(), JobIndex(10**6), FakeFollower())


def _viewer_app() -> web.Application:
    settings = Settings(_env_file=None)
    return create_viewer(settings, LiveJobs(history=100, max_bytes=10**6), FakeFollower(), AssetStore(settings))


@pytest.mark.parametrize("make_app", [_gateway_app, _viewer_app])
async def test_unexpected_errors_are_json_500s_and_logged(make_app):
    app = make_app()
    app.router.add_get("/boom", _boom)  # a handler with a bug
    async with TestClient(TestServer(app)) as client:
        with structlog.testing.capture_logs() as logs:
            response = await client.get("/boom")
        body = await json_error(response, 500)
    assert "a bug of ours" not in json.dumps(body)  # no internals in the answer
    logged = [entry for entry in logs if entry["log_level"] in ("error", "critical")]
    assert logged and logged[0].get("exc_info"), logs


# ---- only JSON is a job (a cross-site form can post text/plain, never application/json) ----


@pytest.mark.parametrize("path", ["/api/jobs", "/execute"])
@pytest.mark.parametrize(
    "content_type",
    [
        None,  # no Content-Type at all
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/mixed; boundary=xyz",
        "application/octet-stream",
        "text/json",
        "application/jsonp",
        "application/json-seq",
        "application/ld+json",
        "application/x-json",
        "application/json, text/plain",
        "application/json text/plain",
        "application /json",
        "application/json\u00a0",
        "",
    ],
)
async def test_only_json_is_accepted(gateway, path, content_type):
    client, _, app = gateway
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post(path, data=b'{"code": "x"}', headers=headers, skip_auto_headers=["Content-Type"])
    body = await json_error(response, 415)
    assert "application/json" in body["error"] and "multipart/form-data" in body["error"]
    assert response.headers["Accept-Post"] == "application/json, multipart/form-data"


@pytest.mark.parametrize("path", ["/api/jobs", "/execute"])
async def test_a_json_body_sent_as_a_form_is_400_not_500(gateway, path):
    """multipart/form-data is taken (test_job_inputs.py), so a body that is no form is a 400 saying so."""
    client, _, _ = gateway
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    body = await json_error(await client.post(path, data=b'{"code": "x"}', headers=headers), 400)
    assert "multipart" in body["error"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON", "application/json; charset=utf-8", "APPLICATION/JSON;CHARSET=UTF-8"],
)
async def test_json_with_or_without_parameters_is_accepted(gateway, content_type):
    client, _, _ = gateway
    response = await client.post("/api/jobs", data=b'{"code": "x"}', headers={"Content-Type": content_type})
    assert response.status == 202, await response.text()
