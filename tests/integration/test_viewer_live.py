"""The viewer pushes results over its WebSocket as they happen."""

import asyncio

import aiohttp
import pytest

from shared.figure_files import SVG_POLICY

pytestmark = pytest.mark.integration

SEED = (
    "import plotly.graph_objects as go\nfig = go.Figure(go.Scatter(y=[3, 1, 2]))\nfig.update_layout(title='Live one')\n"
)


async def test_viewer_pushes_a_result_submitted_through_the_gateway(stack, api):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{stack.viewer_url}/ws") as ws:
            hello = await ws.receive_json(timeout=10)
            assert hello["type"] == "hello"
            accepted = await api.submit(SEED)
            statuses = []
            while "done" not in statuses:
                message = await ws.receive_json(timeout=60)
                if message["type"] == "job" and message["job"]["job_id"] == accepted["job_id"]:
                    statuses.append(message["job"]["status"])
                    job = message["job"]
    assert statuses[-1] == "done"
    assert "Live one" in job["figures"][0]["svg"]
    assert job["code"] == SEED


async def test_viewer_page_is_served_with_a_strict_csp(stack):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.viewer_url}/") as response:
            assert response.status == 200
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert "plotfarm" in await response.text()
        async with session.get(f"{stack.viewer_url}/static/viewer.js") as response:
            assert response.status == 200
        async with session.get(f"{stack.viewer_url}/static/..%2F..%2Fshared%2Fsettings.py") as response:
            assert response.status == 404


async def test_reconnecting_page_gets_what_it_missed(stack, api):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{stack.viewer_url}/ws") as ws:
            offset = (await ws.receive_json(timeout=10))["offset"]
        accepted = await asyncio.gather(*(api.submit(SEED) for _ in range(3)))
        await asyncio.gather(*(api.result(a["job_id"]) for a in accepted))
        await asyncio.sleep(1)
        async with session.ws_connect(f"{stack.viewer_url}/ws?since={offset}") as ws:
            hello = await ws.receive_json(timeout=10)
    assert hello["resumed"] is True
    seen = {job["job_id"]: job["status"] for job in hello["jobs"]}
    for a in accepted:
        assert seen.get(a["job_id"]) == "done"


BIG = (
    "import plotly.graph_objects as go\nimport random\nrandom.seed(1)\n"
    "n = 8000\ngo.Figure(go.Scatter(x=[random.random() for _ in range(n)], y=[random.random() for _ in range(n)],"
    " mode='markers')).update_layout(title='Big one').show()\n"
)


async def test_large_svgs_are_sent_as_urls_and_every_message_stays_small(stack, api):
    """A history of large SVGs (a 50 m world map is 9 MB) must not make a page's first message huge."""
    accepted = await api.submit(BIG)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{stack.viewer_url}/ws") as ws:
            hello = await ws.receive_json(timeout=10)
            job = None
            while job is None or job["status"] != "done":
                message = await ws.receive(timeout=120)
                assert len(message.data) < 4_000_000  # aiohttp's default limit for a client, as in this test
                message = message.json()
                if message["type"] == "job" and message["job"]["job_id"] == accepted["job_id"]:
                    job = message["job"]
        figure = job["figures"][0]
        assert "svg" not in figure and figure["bytes"] > 256_000
        assert figure["svg_url"] == f"api/jobs/{accepted['job_id']}/figures/0.svg"
        async with session.get(f"{stack.viewer_url}/{figure['svg_url']}") as response:
            assert response.status == 200 and response.content_type == "image/svg+xml"
            assert response.headers["Content-Security-Policy"] == SVG_POLICY  # as the gateway sends it
            assert "Big one" in await response.text()
        async with session.ws_connect(f"{stack.viewer_url}/ws") as ws:  # a page opening now
            hello = await ws.receive(timeout=10)
            assert len(hello.data) < 4_000_000
            views = {view["job_id"]: view for view in hello.json()["jobs"]}
            assert "svg_url" in views[accepted["job_id"]]["figures"][0]
