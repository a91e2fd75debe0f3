"""Tests of the test oracle itself (tests/oracle.py), not of plotfarm.

The oracle must be trustworthy before other tests lean on it: the same figure rendered twice by
Kaleido compares equal, a sanitised SVG compares equal to its original, and a changed title or
a missing trace is reported. The rendering tests need Debian's Chromium and the pinned
plotly.js (``make setup``); they take a few seconds.
"""

import copy
import os

import pytest
from py_svg_hush import filter_svg

from tests import oracle
from tests.px_cases import CASES, CASES_BY_NAME

RENDERED_CASES = ("scatter_facet", "pie", "go_numpy_heatmap_contour")


@pytest.fixture(autouse=True)
def _needs_chromium():
    """Missing parts are a failure with the command to run, never a skip."""
    if not (oracle.PLOTLY_JS.is_file() and os.access(oracle.chromium_path(), os.X_OK)):
        pytest.fail(
            f"the Kaleido oracle needs Chromium ({oracle.chromium_path()}) and {oracle.PLOTLY_JS}: run make setup"
        )


# --- reference figures in CPython (no browser) ---------------------------------------------------


def test_oracle_captures_every_show_in_order():
    code = (
        "import plotly.graph_objects as go\nimport plotly.io as pio\n"
        "a = go.Figure(go.Bar(x=[1], y=[2]))\na.show()\n"
        "pio.show(go.Figure(go.Pie(values=[1, 2])))\n"
        "pio.show({'data': [{'type': 'scatter', 'y': [3]}], 'layout': {}})\n"
    )
    figures = oracle.run_user_code(code)
    assert [fig["data"][0]["type"] for fig in figures] == ["bar", "pie", "scatter"]


def test_oracle_falls_back_to_fig_and_restores_show():
    import plotly.io as pio
    from plotly.basedatatypes import BaseFigure

    before = (BaseFigure.show, pio.show)
    figures = oracle.run_user_code("import plotly.express as px\nfig = px.line(x=[1, 2], y=[3, 4], title='left')")
    assert figures[0]["layout"]["title"]["text"] == "left"
    assert (BaseFigure.show, pio.show) == before
    with pytest.raises(oracle.NoFigureError):
        oracle.run_user_code("x = 1")


def test_oracle_cases_are_deterministic_and_titled():
    for case in CASES:
        first, second = oracle.run_user_code(case.code), oracle.run_user_code(case.code)
        assert first == second, case.name
        assert len(first) == 1, case.name
        assert tuple(sorted({trace.get("type", "scatter") for trace in first[0]["data"]})) == case.trace_types
        assert first[0]["layout"]["title"]["text"], case.name


def test_oracle_compare_reports_broken_svg():
    good = '<svg xmlns="http://www.w3.org/2000/svg" width="7" height="4"><text>a</text></svg>'
    assert oracle.compare_svgs(good, good) == []
    assert oracle.compare_svgs("<svg", good)[0].startswith("ours is not well-formed SVG")


# --- rendering with Kaleido ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered():
    """{case: (figure, first SVG, second SVG)} from one Kaleido session, rendered twice."""
    figures = {name: oracle.run_user_code(CASES_BY_NAME[name].code)[0] for name in RENDERED_CASES}
    with oracle.KaleidoOracle() as kaleido:
        first = kaleido.render(list(figures.values()))
        second = kaleido.render(list(figures.values()))
        # Mutated figures: the title changed in the first case, a trace dropped in the others.
        retitled = copy.deepcopy(figures["scatter_facet"])
        retitled["layout"]["title"]["text"] += " (changed)"
        dropped = {name: copy.deepcopy(figures[name]) for name in ("scatter_facet", "go_numpy_heatmap_contour")}
        del dropped["scatter_facet"]["data"][1]  # versicolor, in the second facet
        del dropped["go_numpy_heatmap_contour"]["data"][1]  # the contour lines
        mutated = kaleido.render([retitled, *dropped.values()])
    return {
        "cases": {name: (figures[name], first[i], second[i]) for i, name in enumerate(RENDERED_CASES)},
        "retitled": mutated[0],
        "dropped": dict(zip(dropped, mutated[1:], strict=True)),
    }


@pytest.mark.timeout(90)
def test_oracle_same_figure_compares_equal(rendered):
    for name, (_, first, second) in rendered["cases"].items():
        assert first.lstrip().startswith("<svg"), name
        assert oracle.compare_svgs(first, first) == [], name
        assert oracle.compare_svgs(first, second) == [], name  # two renderings, new ids each time
        summary = oracle.summarize_svg(first)
        assert summary.traces and summary.texts, name


@pytest.mark.timeout(90)
def test_oracle_sees_what_each_case_draws(rendered):
    summaries = {name: oracle.summarize_svg(svg) for name, (_, svg, _) in rendered["cases"].items()}
    facet = summaries["scatter_facet"]
    assert facet.traces == {"scatter@xy": 1, "scatter@x2y2": 1, "scatter@x3y3": 1}
    assert set(facet.axes) == {"x", "x2", "x3", "y", "y2", "y3"}
    assert {"Iris: sepal size by species", "setosa", "versicolor", "virginica", "species=setosa"} <= set(facet.texts)
    assert summaries["pie"].traces == {"pie": 1}
    assert {"Thur", "Fri", "Sat", "Sun", "Share of tips by day"} <= set(summaries["pie"].texts)
    heat = summaries["go_numpy_heatmap_contour"]
    assert heat.traces == {"heatmap@xy": 1, "contour@xy": 1}
    assert heat.images == {"hm": 1}
    assert {"peak", "Heatmap with contour lines"} <= set(heat.texts)


@pytest.mark.timeout(90)
def test_oracle_sanitised_svg_compares_equal(rendered):
    keep = {"image": ["png", "jpeg", "gif", "webp"]}  # as services/renderer/sanitize.py
    for name, (_, svg, _) in rendered["cases"].items():
        clean = filter_svg(svg.encode(), keep_data_url_mime_types=keep).decode()
        assert oracle.compare_svgs(clean, svg) == [], name


@pytest.mark.timeout(90)
def test_oracle_detects_changed_title(rendered):
    _, reference, _ = rendered["cases"]["scatter_facet"]
    assert oracle.compare_svgs(rendered["retitled"], reference) == [
        "text missing from ours: 'Iris: sepal size by species'",
        "text only in ours: 'Iris: sepal size by species (changed)'",
    ]


@pytest.mark.timeout(90)
def test_oracle_detects_missing_trace(rendered):
    facet = oracle.compare_svgs(rendered["dropped"]["scatter_facet"], rendered["cases"]["scatter_facet"][1])
    assert "trace groups scatter@x2y2: ours 0, reference 1" in facet
    assert "text missing from ours: 'versicolor'" in facet
    heat = oracle.compare_svgs(
        rendered["dropped"]["go_numpy_heatmap_contour"], rendered["cases"]["go_numpy_heatmap_contour"][1]
    )
    assert heat == ["trace groups contour@xy: ours 0, reference 1"]
