"""Figure jobs on the real stack: figure JSON in, no Python, every format out, the same bounds as code.

The figures are made the way a user makes them elsewhere: ``fig.to_json()`` in
CPython (plotly, pandas), then posted as ``"figure"``. Jobs that test the
renderer's own bounds (a gateway may refuse them before) are published to the
jobs queue directly, as a gateway would publish them.
"""

import asyncio
import base64
import json

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from shared.broker import Broker
from shared.messages import JobQueued, RenderJob, new_job_id, utcnow
from shared.settings import Settings
from tests.e2e.conftest import CHROMIUM, chromium_args
from tests.integration.image_files import jpeg_size, pdf_facts, png_size, webp_size

pytestmark = pytest.mark.integration

TITLE = "Figure job scatter"


def seed_figure() -> dict:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[10, 11, 12, 13], mode="lines+markers", name="growth"))
    fig.update_layout(title=TITLE, xaxis_title="x", yaxis_title="y", width=400, height=300)
    return json.loads(fig.to_json())


def px_figure() -> dict:
    import plotly.express as px

    fig = px.scatter(px.data.iris(), x="sepal_width", y="sepal_length", color="species", title="Iris by species")
    return json.loads(fig.to_json())


async def post_job(stack, body: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{stack.gateway_url}/api/jobs", json=body) as response:
            assert response.status == 202, f"{response.status}: {await response.text()}"
            return await response.json()


async def figure_job(api, stack, figure, timeout: float = 90, **fields) -> dict:
    accepted = await post_job(stack, {"figure": figure, **fields})
    return await api.result(accepted["job_id"], timeout)


async def get(url: str) -> tuple[int, str, bytes, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, response.content_type, await response.read(), dict(response.headers)


async def publish(stack, **fields) -> str:
    """A RenderJob put on the jobs queue as the gateway would (with its `queued` event)."""
    settings = Settings(amqp_url=stack.amqp_url, namespace=stack.namespace)
    job = RenderJob(
        job_id=new_job_id(),
        width=700,
        height=450,
        timeout_s=10.0,
        submitted_at=utcnow(),
        formats=["svg"],
        scale=1.0,
        **fields,
    )
    broker = await Broker(settings).connect()
    try:
        await broker.publish_event(JobQueued(job_id=job.job_id, code="", submitted_at=job.submitted_at))
        await broker.publish_job(job)
    finally:
        await broker.close()
    return job.job_id


@pytest.mark.parametrize("make", [seed_figure, px_figure], ids=["seed", "px"])
async def test_a_figure_json_comes_out_in_every_format(api, stack, make):
    figure = make()
    formats = ["svg", "png", "jpeg", "webp", "pdf", "json", "html"]
    result = await figure_job(api, stack, figure, formats=formats)
    assert result["status"] == "done", result.get("error")
    assert result["timings"]["wait_ms"] == 0 and result["timings"]["load_ms"] == 0  # no interpreter involved
    files = result["figures"][0]["files"]
    assert set(files) == set(formats)
    width, height = (400, 300) if make is seed_figure else (700, 450)
    title = figure["layout"]["title"]["text"]
    expected = {"svg": "image/svg+xml", "png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
    expected |= {"pdf": "application/pdf", "json": "application/json", "html": "text/html"}
    bodies = {}
    for fmt, kind in expected.items():
        status, content_type, body, headers = await get(files[fmt]["url"])
        assert status == 200 and content_type == kind, (fmt, status, content_type)
        assert "sandbox" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
        if fmt != "html":
            assert len(body) == files[fmt]["bytes"], fmt
        bodies[fmt] = body
    assert title.encode() in bodies["svg"] and b"<script" not in bodies["svg"]
    assert png_size(bodies["png"]) == jpeg_size(bodies["jpeg"]) == webp_size(bodies["webp"]) == (width, height)
    assert json.loads(bodies["json"])["data"][0]["type"] == "scatter"
    pdf = pdf_facts(bodies["pdf"])
    assert pdf.pages == 1 and pdf.text_operators > 0 and pdf.images == 0, pdf
    assert title in pdf.text, pdf.text[:500]
    assert pdf.page_size == pytest.approx((width * 0.75, height * 0.75), abs=1), pdf.page_size  # CSS px -> pt
    # The PDF is a download that can run nothing where it is opened.
    status, _, _, headers = await get(files["pdf"]["url"])
    assert headers["Content-Disposition"].startswith("attachment;") and ".pdf" in headers["Content-Disposition"]
    # .jpg names the JPEG too, as write_image takes it.
    status, content_type, body, _ = await get(files["jpeg"]["url"].removesuffix(".jpeg") + ".jpg")
    assert status == 200 and content_type == "image/jpeg" and body == bodies["jpeg"]


async def test_a_list_of_figures_comes_back_in_order(api, stack):
    figures = [seed_figure(), px_figure()]
    result = await figure_job(api, stack, figures, formats=["svg", "json"])
    assert result["status"] == "done", result.get("error")
    assert [f["index"] for f in result["figures"]] == [0, 1]
    assert TITLE in result["figures"][0]["svg"] and "Iris by species" in result["figures"][1]["svg"]


async def test_a_layout_image_url_is_warned_about_and_never_fetched(api, stack):
    hits = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"", content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/logo.png"
        figure = seed_figure()
        figure["layout"]["images"] = [
            {"source": url, "xref": "paper", "yref": "paper", "x": 0, "y": 1, "sizex": 0.2, "sizey": 0.2}
        ]
        result = await figure_job(api, stack, figure, formats=["svg", "png", "pdf", "json"])
        await asyncio.sleep(1)  # a late fetch would have arrived by now
    finally:
        await runner.cleanup()
    assert result["status"] == "done", result.get("error")
    assert f"figure 1: layout image from {url} was left out (jobs have no network)" in result["warnings"]
    assert url not in json.dumps(result["figures"][0].get("spec") or {}) and url not in result["figures"][0]["svg"]
    assert hits == []


async def test_more_figures_than_the_limit_keeps_the_first_and_says_so(api, stack):
    limit = Settings().max_figures
    job_id = await publish(stack, figures=[seed_figure()] * (limit + 1))
    result = await api.result(job_id)
    assert result["status"] == "done", result.get("error")
    assert len(result["figures"]) == limit
    assert f"{limit + 1} figures were shown; the first {limit} were kept (the limit per job)" in result["warnings"]


async def test_a_figure_job_without_figures_fails_with_no_figure_error(api, stack):
    result = await api.result(await publish(stack, figures=[]))
    assert result["status"] == "failed" and result["error"]["type"] == "NoFigureError", result["error"]


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


async def test_too_deep_a_figure_fails_with_output_limit_exceeded(api, stack):
    figure = seed_figure()
    figure["layout"]["meta"] = nested(Settings().max_figure_depth + 5)
    job_id = await publish(stack, figures=[figure])
    result = await api.result(job_id)
    assert result["status"] == "failed"
    assert result["error"]["type"] == "OutputLimitExceeded" and "nested more than" in result["error"]["message"]


async def test_too_big_a_figure_fails_with_output_limit_exceeded(api, stack):
    figure = seed_figure()
    figure["layout"]["meta"] = "x" * (Settings().max_figure_bytes + 10)
    job_id = await publish(stack, figures=[figure])
    result = await api.result(job_id)
    assert result["status"] == "failed"
    assert result["error"]["type"] == "OutputLimitExceeded" and "bytes of JSON" in result["error"]["message"]


@pytest.mark.parametrize(
    ("scale", "pixels"), [(0.5, (200, 150)), (2.5, (1000, 750)), (0.5, (201, 151)), (0.001, (1, 1))]
)
async def test_raster_formats_at_any_scale(api, stack, scale, pixels):
    figure = seed_figure()
    if pixels == (201, 151):  # 401x301 at 0.5 is 200.5x150.5: rounded (up), not cut
        figure["layout"].update(width=401, height=301)
    result = await figure_job(api, stack, figure, formats=["png", "jpeg", "webp"], scale=scale)
    assert result["status"] == "done", result.get("error")
    files = result["figures"][0]["files"]
    sizes = {}
    for fmt, size_of in (("png", png_size), ("jpeg", jpeg_size), ("webp", webp_size)):
        status, _, body, _ = await get(files[fmt]["url"])
        assert status == 200
        sizes[fmt] = size_of(body)
    assert sizes == {"png": pixels, "jpeg": pixels, "webp": pixels}


async def corner_pixel(image: bytes, content_type: str) -> list[int]:
    """The top-left pixel of an image, as a browser decodes it: [r, g, b, a]."""
    url = f"data:{content_type};base64,{base64.b64encode(image).decode()}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
        try:
            page = await browser.new_page()
            return await page.evaluate(CORNER_PIXEL, url)
        finally:
            await browser.close()


CORNER_PIXEL = """async (url) => {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  return Array.from(context.getImageData(0, 0, 1, 1).data);
}"""


async def test_jpeg_is_drawn_on_white_as_kaleido_does(api, stack):
    figure = seed_figure()
    figure["layout"]["paper_bgcolor"] = "rgba(0,0,0,0)"  # transparent: JPEG has no alpha, white shows through
    result = await figure_job(api, stack, figure, formats=["jpeg", "png"])
    assert result["status"] == "done", result.get("error")
    files = result["figures"][0]["files"]
    jpeg = await corner_pixel((await get(files["jpeg"]["url"]))[2], "image/jpeg")
    png = await corner_pixel((await get(files["png"]["url"]))[2], "image/png")
    assert all(channel >= 250 for channel in jpeg), jpeg
    assert png[3] == 0, png  # the PNG keeps its transparency


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
async def test_the_pixel_cap_holds_for_every_raster_format(api, stack, fmt):
    figure = seed_figure()
    figure["layout"].update(width=5000, height=5000)
    result = await figure_job(api, stack, figure, formats=[fmt], scale=2)
    assert result["status"] == "failed"
    assert result["error"]["type"] == "OutputLimitExceeded"
    assert "10000x10000 = 100000000 pixels" in result["error"]["message"], result["error"]["message"]


async def test_pdf_only_keeps_no_svg(api, stack):
    result = await figure_job(api, stack, seed_figure(), formats=["pdf"])
    assert result["status"] == "done", result.get("error")
    assert set(result["figures"][0]["files"]) == {"pdf"}
    status, kind, body, _ = await get(result["figures"][0]["files"]["pdf"]["url"])
    assert status == 200 and kind == "application/pdf" and body.startswith(b"%PDF-")
    assert body.rstrip().endswith(b"%%EOF")  # served whole
