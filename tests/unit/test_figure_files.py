"""A figure's file gets the same headers from the viewer as from the gateway (shared/figure_files.py)."""

import base64

from aiohttp.test_utils import TestClient, TestServer

from services.viewer.app import create_app
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.figure_files import PNG_POLICY, SVG_POLICY
from shared.messages import JobQueued, RenderResult, utcnow
from shared.settings import Settings
from tests.unit.test_gateway_app import FakeFollower

PNG = b"\x89PNG\r\n\x1a\nfake"


async def viewer_with(figures: list) -> TestClient:
    live = LiveJobs(history=100, max_bytes=10**6)
    live.apply(JobQueued(job_id="a1", code="x", submitted_at=utcnow()), 0)
    live.apply(RenderResult(job_id="a1", status="done", figures=figures), 1)
    settings = Settings(_env_file=None)
    client = TestClient(TestServer(create_app(settings, live, FakeFollower(), AssetStore(settings), ApiKeys([]))))
    await client.start_server()
    return client


async def test_the_viewer_answers_as_the_gateway_does_svg_inline_png_as_a_download_never_cached():
    client = await viewer_with([{"svg": "<svg>a</svg>", "png": base64.b64encode(PNG).decode()}])
    try:
        svg = await client.get("/api/jobs/a1/figures/0.svg")
        assert svg.status == 200 and svg.content_type == "image/svg+xml"
        assert await svg.text() == "<svg>a</svg>"
        assert svg.headers["Content-Security-Policy"] == SVG_POLICY
        assert svg.headers["Content-Disposition"] == 'inline; filename="a1-0.svg"'
        png = await client.get("/api/jobs/a1/figures/0.png")
        assert png.status == 200 and png.content_type == "image/png"
        assert await png.read() == PNG
        assert png.headers["Content-Security-Policy"] == PNG_POLICY
        assert png.headers["Content-Disposition"] == 'attachment; filename="a1-0.png"'
        for response in (svg, png):
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        await client.close()
    # What it has not, it says in its own words.
    client = await viewer_with(["<svg>a</svg>"])
    try:
        missing_png = await client.get("/api/jobs/a1/figures/0.png")
        assert missing_png.status == 404
        assert (await missing_png.json())["error"] == "no such PNG (unknown job, or it asked for no PNG)"
        missing_figure = await client.get("/api/jobs/a1/figures/1.svg")
        assert missing_figure.status == 404
        assert (await missing_figure.json())["error"] == "no such SVG (unknown job or figure)"
        assert (await client.get("/api/jobs/a1/figures/0.json")).status == 404  # the gateway's formats only
    finally:
        await client.close()
