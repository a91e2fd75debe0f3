"""The gateway's answers to bad input, unknown jobs, a missing broker, and its own restart."""

import asyncio
import json
import time

import aiohttp
import pytest

from services.gateway.validation import request_body_limit
from shared.settings import Settings
from tests.support import wait_http_ok

pytestmark = pytest.mark.integration

SEED = "import plotly.graph_objects as go\nfig = go.Figure(go.Scatter(y=[1, 2]))\nfig.show()\n"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'["code"]', 400, "JSON object"),
        (b"{}", 400, "give code or figure"),
        (b'{"code": ""}', 400, "code is empty"),
        (b'{"code": "   \\n"}', 400, "code is empty"),
        (b'{"code": 42}', 400, "invalid job request"),
        (b'{"code": "x", "width": "wide"}', 400, "invalid job request"),
        (b'{"code": "x", "timeout_s": 0}', 400, "invalid job request"),
        (b'{"code": "x", "timeout_s": 600}', 400, "timeout_s is too long"),
        (b'{"code": "x", "colour": "red"}', 400, "invalid job request"),
        (json.dumps({"code": "#" * (64 * 1024 + 1)}).encode(), 413, "the limit is 65536"),
    ],
)
async def test_bad_job_requests_get_a_clear_4xx(api, body, status, fragment):
    async with api.session.post(f"{api.base}/api/jobs", data=body, headers={"Content-Type": "application/json"}) as r:
        assert r.status == status
        payload = await r.json()
    assert fragment in json.dumps(payload), payload


async def test_oversized_body_is_refused_before_it_is_read(api):
    limit = request_body_limit(Settings(_env_file=None))  # the stack's gateway runs with the defaults
    body = b'{"code": "' + b"#" * limit + b'"}'
    headers = {"Content-Type": "application/json"}
    async with api.session.post(f"{api.base}/api/jobs", data=body, headers=headers) as response:
        assert response.status == 413
        assert f"the limit is {limit}" in (await response.json())["error"]


async def test_unknown_job_and_figure_are_404(api):
    async with api.session.get(f"{api.base}/api/jobs/does-not-exist") as response:
        assert response.status == 404
        assert "no job" in (await response.json())["error"]
    async with api.session.get(f"{api.base}/api/jobs/does-not-exist/figures/0.svg") as response:
        assert response.status == 404


async def test_bad_wait_parameter_is_400(api):
    accepted = await api.submit(SEED)
    async with api.session.get(f"{api.base}/api/jobs/{accepted['job_id']}?wait=soon") as response:
        assert response.status == 400


async def test_wrong_method_is_405_json(api):
    async with api.session.get(f"{api.base}/api/jobs") as response:
        assert response.status == 405
        assert "error" in await response.json()


def test_broker_down_gives_503_quickly(stack):
    gateway = stack.start_gateway("gateway-no-broker", PLOTFARM_AMQP_URL="amqp://guest:guest@127.0.0.1:1/")
    try:
        wait_http_ok(f"{gateway.url}/healthz", 30, gateway)

        async def submit() -> tuple[int, dict, float]:
            async with aiohttp.ClientSession() as session:
                started = time.monotonic()
                async with session.post(f"{gateway.url}/api/jobs", json={"code": SEED}) as response:
                    return response.status, await response.json(), time.monotonic() - started

        status, body, elapsed = asyncio.run(submit())
        assert status == 503
        assert "retry" in body["error"]
        assert elapsed < 5
    finally:
        gateway.stop()


def test_restarted_gateway_remembers_jobs_finished_while_it_was_down(stack):
    gateway = stack.start_gateway("gateway-restart")
    stack.wait_ready(gateway)

    async def submit(url: str) -> str:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/api/jobs", json={"code": SEED}) as response:
                assert response.status == 202
                return (await response.json())["job_id"]

    job_id = asyncio.run(submit(gateway.url))
    gateway.stop()  # the job finishes while no such gateway runs

    time.sleep(3)
    restarted = stack.start_gateway("gateway-restarted")
    try:
        stack.wait_ready(restarted)

        async def fetch() -> dict:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{restarted.url}/api/jobs/{job_id}?wait=30") as response:
                    assert response.status == 200
                    return await response.json()

        status = asyncio.run(fetch())
        assert status["status"] == "done"
        assert status["figures"][0]["bytes"] > 1000
    finally:
        restarted.stop()
