"""Every output format on the real stack: SVG, PNG at a scale, figure JSON, standalone HTML."""

import base64
import json
import struct

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.e2e.conftest import CHROMIUM, chromium_args

pytestmark = pytest.mark.integration

CODE = (
    "import plotly.express as px\n"
    "fig = px.bar(x=['a', 'b', 'c'], y=[3, 1, 2], title='</script><b>formats</b>')\n"
    "fig.update_layout(width=400, height=300)\n"
    "fig.show()\n"
)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return struct.unpack(">II", data[16:24])


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


async def test_a_bad_format_or_scale_is_a_400(api, stack):
    async with aiohttp.ClientSession() as session:
        for body in ({"code": "x", "formats": ["pdf"]}, {"code": "x", "scale": 9}, {"code": "x", "formats": []}):
            async with session.post(f"{stack.gateway_url}/api/jobs", json=body) as response:
                assert response.status == 400, body
                assert (await response.json())["details"], body
