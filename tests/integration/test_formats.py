"""Every output format on the real stack: SVG, PNG, JPEG and WebP at a scale, a vector PDF, figure JSON, HTML."""

import base64
import json

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.e2e.conftest import CHROMIUM, RECORDER, chromium_args
from tests.integration.image_files import jpeg_size, pdf_facts, png_size, webp_size

pytestmark = pytest.mark.integration

CODE = (
    "import plotly.express as px\n"
    "fig = px.bar(x=['a', 'b', 'c'], y=[3, 1, 2], title='</script><b>formats</b>')\n"
    "fig.update_layout(width=400, height=300)\n"
    "fig.show()\n"
)


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes, dict]:
    async with session.get(url) as response:
        return response.status, response.content_type, await response.read(), dict(response.headers)


async def test_every_format_is_made_and_served(api, stack):
    result = await api.render(CODE, formats=["svg", "png", "json", "html"], scale=2)
    assert result["status"] == "done", result.get("error")
    files = result["figures"][0]["files"]
    assert set(files) == {"svg", "png", "json", "html"}
    async with aiohttp.ClientSession() as session:
        status, kind, svg, _ = await fetch(session, files["svg"]["url"])
        assert status == 200 and kind == "image/svg+xml" and b"formats" in svg and b"<script" not in svg

        status, kind, png, headers = await fetch(session, files["png"]["url"])
        assert status == 200 and kind == "image/png" and "sandbox" in headers["Content-Security-Policy"]
        assert png_size(png) == (800, 600)  # the layout's 400x300 at scale 2
        assert len(png) == files["png"]["bytes"]

        status, kind, raw, _ = await fetch(session, files["json"]["url"])
        spec = json.loads(raw)
        assert status == 200 and kind == "application/json"
        assert spec["data"][0]["type"] == "bar" and spec["layout"]["width"] == 400
        assert spec["layout"]["title"]["text"] == "</script><b>formats</b>"

        status, kind, page, headers = await fetch(session, files["html"]["url"])
        assert status == 200 and kind == "text/html"
        policy = headers["Content-Security-Policy"]
        assert "sandbox allow-scripts" in policy and "connect-src 'none'" in policy
        # plotly.js is inline; the browser test proves the page fetches nothing.
        assert b"<script src=" not in page and b"<link " not in page
        assert b"</script><b>formats" not in page  # the figure is data in the page, never markup


async def test_the_html_page_is_interactive_offline(api):
    result = await api.render(CODE, formats=["html"])
    url = result["figures"][0]["files"]["html"]["url"]
    requests = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
        try:
            page = await browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(url)
            await page.wait_for_selector(".js-plotly-plot .bars path", timeout=30_000)
            title = await page.text_content(".gtitle")
            scripts = await page.evaluate("document.scripts.length")
        finally:
            await browser.close()
    assert "formats" in title and scripts == 3  # the title stayed text: no element came out of it
    assert requests == [url], requests  # nothing but the page itself


URLS_CODE = """
import plotly.graph_objects as go
bars = go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2]), layout={"title": "urls", "width": 400, "height": 300})
bars.add_layout_image(source="https://BAD.example/logo.png", xref="paper", yref="paper", x=0, y=1, sizex=0.2, sizey=0.2)
bars.add_layout_image(source="data:image/png;base64," + PNG, xref="paper", yref="paper", x=0.8, y=1, sizex=0.2, sizey=0.2)
bars.show()
go.Figure(go.Choropleth(geojson="https://BAD.example/regions.geojson", locations=["x"], z=[1], locationmode="geojson-id")).show()
"""
# A 1x1 PNG: a layout image from a data: URI is the image itself, and stays.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


async def test_urls_in_a_figure_are_left_out_and_said_so_and_a_saved_page_fetches_nothing(api, tmp_path):
    result = await api.render(f"PNG = {PNG!r}\n{URLS_CODE}", formats=["svg", "json", "html"], timeout=120)
    assert result["status"] == "done", result.get("error")
    warnings = result["warnings"]
    assert "figure 1: layout image from https://BAD.example/logo.png was left out (jobs have no network)" in warnings
    assert "figure 2: GeoJSON from https://BAD.example/regions.geojson was left out (jobs have no network)" in warnings
    async with aiohttp.ClientSession() as session:
        specs = [json.loads((await fetch(session, figure["files"]["json"]["url"]))[2]) for figure in result["figures"]]
        page = (await fetch(session, result["figures"][0]["files"]["html"]["url"]))[2]
    assert "BAD.example" not in json.dumps(specs) and b"BAD.example" not in page
    assert specs[0]["layout"]["images"][1]["source"] == f"data:image/png;base64,{PNG}"

    saved = tmp_path / "figure.html"  # as a user saves it: no header, only the page's own policy
    saved.write_bytes(page)
    requests = []  # every request the page tries, those its policy blocks included
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
        try:
            opened = await browser.new_page()
            await opened.add_init_script(RECORDER)
            opened.on("request", lambda request: requests.append(request.url))
            await opened.goto(saved.as_uri())
            await opened.wait_for_selector(".js-plotly-plot .bars path", timeout=30_000)
            images = await opened.eval_on_selector_all("image", "els => els.map(e => e.getAttribute('href'))")
            tried = list(requests)
            # The page's own policy refuses a request it did not make itself.
            fetched = await opened.evaluate("fetch('https://example.com/').then(() => 'made', () => 'refused')")
            violations = await opened.evaluate("window.__cspViolations")
        finally:
            await browser.close()
    assert tried == [saved.as_uri()], tried  # nothing but the page itself
    assert images == [f"data:image/png;base64,{PNG}"]
    assert fetched == "refused" and any(v.startswith("connect-src https://example.com/") for v in violations)


async def test_png_larger_than_the_limit_fails_with_output_limit_exceeded(api):
    code = "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).update_layout(width=5000, height=5000).show()"
    result = await api.render(code, formats=["png"], scale=4)
    assert result["status"] == "failed"
    assert result["error"]["type"] == "OutputLimitExceeded" and "pixels of PNG" in result["error"]["message"]


async def test_execute_returns_the_png_too(api, stack):
    async with aiohttp.ClientSession() as session:
        body = {"code": CODE, "formats": ["svg", "png"]}
        async with session.post(f"{stack.gateway_url}/execute", json=body) as response:
            view = await response.json()
    assert view["status"] == "done" and "formats" in view["svg"]
    assert png_size(base64.b64decode(view["png"])) == (400, 300)


async def test_jpeg_webp_and_a_vector_pdf_from_code(api):
    result = await api.render(CODE, formats=["jpeg", "webp", "pdf"], scale=1.5)
    assert result["status"] == "done", result.get("error")
    files = result["figures"][0]["files"]
    assert set(files) == {"jpeg", "webp", "pdf"}  # the SVG the PDF was printed from is not kept
    async with aiohttp.ClientSession() as session:
        bodies = {fmt: await fetch(session, files[fmt]["url"]) for fmt in files}
    assert bodies["jpeg"][1] == "image/jpeg" and jpeg_size(bodies["jpeg"][2]) == (600, 450)
    assert bodies["webp"][1] == "image/webp" and webp_size(bodies["webp"][2]) == (600, 450)
    status, kind, pdf, headers = bodies["pdf"]
    assert status == 200 and kind == "application/pdf" and headers["Content-Disposition"].startswith("attachment;")
    facts = pdf_facts(pdf)
    # Vector: its text is text (drawn with text operators, the title readable), and no image in it.
    assert facts.pages == 1 and facts.images == 0 and facts.text_operators > 0, facts
    assert "formats" in facts.text, facts.text[:300]
    assert facts.page_size == pytest.approx((300, 225), abs=1)  # 400x300 CSS pixels, in points; scale is for pixels


async def test_a_bad_format_or_scale_is_a_400(api, stack):
    async with aiohttp.ClientSession() as session:
        bodies = ({"code": "x", "formats": ["eps"]}, {"code": "x", "scale": 11}, {"code": "x", "scale": 0})
        for body in (*bodies, {"code": "x", "formats": []}):
            async with session.post(f"{stack.gateway_url}/api/jobs", json=body) as response:
                assert response.status == 400, body
                assert (await response.json())["details"], body
