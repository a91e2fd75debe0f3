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


async def test_numpy_pandas_and_plotly_express_work(api):
    code = (
        "import numpy as np\nimport pandas as pd\nimport plotly.express as px\n"
        "df = pd.DataFrame({'x': np.arange(5), 'y': np.arange(5) ** 2})\n"
        "print(np.__version__, pd.__version__)\n"
        "px.line(df, x='x', y='y', title='squares').show()\n"
    )
    result = await api.render(code)
    assert result["status"] == "done", result.get("error")
    assert "squares" in result["figures"][0]["svg"]
    assert result["stdout"].split() == ["2.0.2", "2.2.3"]
    assert result["packages"] == []  # preloaded in the snapshot: nothing to load


async def test_packages_load_on_demand_from_the_imports(api):
    """scipy is not in the snapshot: the job's imports load it, verified, for this job only."""
    code = (
        "import numpy as np\nfrom scipy import stats\nimport plotly.graph_objects as go\n"
        "x = np.linspace(-3, 3, 61)\ngo.Figure(go.Scatter(x=x, y=stats.norm.pdf(x))).update_layout(title='normal pdf').show()\n"
    )
    result = await api.render(code, timeout_s=60, timeout=180)
    assert result["status"] == "done", result.get("error")
    assert "normal pdf" in result["figures"][0]["svg"]
    assert "scipy" in result["packages"] and result["timings"]["load_ms"] > 0


async def test_numpy_randomness_differs_between_fresh_interpreters(api):
    """Interpreters restored from one snapshot must not replay the same random numbers."""
    code = "import numpy as np, random\nprint(np.random.rand(), random.random())\nimport plotly.graph_objects as go\ngo.Figure().show()"
    first, second = [await api.render(code) for _ in range(2)]
    assert first["stdout"] != second["stdout"], first["stdout"]


async def test_missing_modules_and_network_data_say_so_in_plotfarms_words(api):
    trendline = await api.render(
        "import plotly.express as px\npx.scatter(px.data.tips(), x='total_bill', y='tip', trendline='ols').show()"
    )
    assert trendline["status"] == "failed"
    assert trendline["error"]["type"] == "ModuleNotFoundError"
    assert (
        "statsmodels" in trendline["error"]["message"] and "not available in plotfarm" in trendline["error"]["message"]
    )
    unknown = await api.render("import seaborn")
    assert "pip" not in unknown["error"]["message"] + unknown["error"]["traceback"]
    assert "numpy 2.0.2" in unknown["error"]["message"]
    network = await api.render("import pandas as pd\npd.read_csv('https://example.com/data.csv')")
    assert network["status"] == "failed" and "no network access" in network["error"]["message"]
    dataset = await api.render(
        "import plotly.express as px\ndf = px.data.gapminder()\nprint(len(df))\npx.bar(df.query('year == 2007'), x='continent', y='pop').show()"
    )
    assert dataset["status"] == "done" and dataset["stdout"].strip() == "1704"


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
