"""The render pipeline end to end: gateway -> RabbitMQ -> renderer (Chromium + Pyodide + plotly.js) -> result."""

import asyncio
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED = (
    "import plotly.graph_objects as go; fig = go.Figure(data=go.Scatter(x=[1,2,3], y=[4,5,6])); "
    "fig.update_layout(title='Example')"
)


def assert_plotly_svg(svg: str, title: str) -> None:
    assert svg.startswith("<svg") and 'class="main-svg"' in svg, svg[:200]
    assert title in svg


@pytest.mark.parametrize(("example", "title"), [("scatter.py", "Example scatter"), ("bar.py", "Fruit sold this week")])
async def test_readme_examples_render_to_svg_with_their_titles(api, example, title):
    result = await api.render((EXAMPLES / example).read_text())
    assert result["status"] == "done", result.get("error")
    assert len(result["figures"]) == 1
    assert_plotly_svg(result["figures"][0]["svg"], title)
    assert result["renderer_id"] in ("renderer-a", "renderer-b")
    timings = result["timings"]
    assert timings["total_ms"] >= timings["run_ms"] > 0
    assert timings["svg_ms"] > 0


async def test_seed_command_without_show_renders_fig_variable(api):
    result = await api.render(SEED)
    assert result["status"] == "done", result.get("error")
    assert_plotly_svg(result["figures"][0]["svg"], "Example")


async def test_two_shows_make_two_figures_in_order(api):
    result = await api.render((EXAMPLES / "two_figures.py").read_text())
    assert result["status"] == "done", result.get("error")
    svgs = [figure["svg"] for figure in result["figures"]]
    assert len(svgs) == 2
    assert_plotly_svg(svgs[0], "First figure")
    assert_plotly_svg(svgs[1], "Second figure")


async def test_figure_urls_serve_svg(api):
    result = await api.render((EXAMPLES / "bar.py").read_text())
    url = result["figures"][0]["url"]
    async with api.session.get(url) as response:
        assert response.status == 200
        assert response.content_type == "image/svg+xml"
        assert "Fruit sold this week" in await response.text()
    async with api.session.get(url.replace("/0.svg", "/1.svg")) as response:
        assert response.status == 404


async def test_stdout_is_captured(api):
    result = await api.render("print('hello from the sandbox')\n" + SEED)
    assert result["status"] == "done"
    assert result["stdout"] == "hello from the sandbox\n"


async def test_syntax_error_is_a_failed_result_with_traceback(api):
    result = await api.render("import plotly.graph_objects as go\nfig = go.Figure(\n")
    assert result["status"] == "failed"
    assert result["error"]["type"] == "SyntaxError"
    assert 'File "<job>", line 2' in result["error"]["traceback"]
    assert result["figures"] == []


async def test_runtime_exception_is_a_failed_result_with_traceback(api):
    code = "import plotly.graph_objects as go\n\ndef plot(n):\n    return 10 / n\n\nplot(0)\n"
    result = await api.render(code)
    assert result["status"] == "failed"
    assert result["error"]["type"] == "ZeroDivisionError"
    traceback = result["error"]["traceback"]
    assert 'File "<job>", line 6' in traceback and 'File "<job>", line 4, in plot' in traceback
    assert "plotfarm_capture" not in traceback


async def test_code_without_any_figure_fails_clearly(api):
    result = await api.render("x = 1 + 1")
    assert result["status"] == "failed"
    assert result["error"]["type"] == "NoFigureError"
    assert "fig.show()" in result["error"]["message"]


async def test_plotly_express_fails_with_a_hint(api):
    result = await api.render("import plotly.express as px\nfig = px.scatter(x=[1], y=[2])")
    assert result["status"] == "failed"
    assert "plotly.graph_objects" in result["error"]["message"], result["error"]


async def test_infinite_loop_times_out_and_renderer_keeps_serving(api):
    started = time.monotonic()
    looping = await api.render("while True:\n    pass\n", timeout_s=2)
    elapsed = time.monotonic() - started
    assert looping["status"] == "failed"
    assert looping["error"]["type"] == "TimeoutError"
    assert elapsed < 5, f"timeout took {elapsed:.1f} s"
    stuck_renderer = looping["renderer_id"]
    # The next jobs succeed, including on the renderer that ran the loop.
    seen = set()
    for _ in range(12):
        result = await api.render(SEED)
        assert result["status"] == "done", result.get("error")
        seen.add(result["renderer_id"])
        if stuck_renderer in seen:
            break
    assert stuck_renderer in seen


async def test_two_renderers_share_the_queue(api):
    code = (EXAMPLES / "scatter.py").read_text()
    accepted = await asyncio.gather(*(api.submit(code) for _ in range(12)))
    results = await asyncio.gather(*(api.result(a["job_id"]) for a in accepted))
    assert all(r["status"] == "done" for r in results)
    assert {r["renderer_id"] for r in results} == {"renderer-a", "renderer-b"}


async def test_long_poll_returns_as_soon_as_the_job_is_final(api):
    accepted = await api.submit(SEED)
    started = time.monotonic()
    status = await api.status(accepted["job_id"], wait=30)
    assert status["status"] == "done"
    assert time.monotonic() - started < 15


async def test_execute_endpoint_compatible_with_the_original_demo(api):
    async with api.session.post(f"{api.base}/execute", json={"code": SEED}) as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "done"
    assert_plotly_svg(body["svg"], "Example")
