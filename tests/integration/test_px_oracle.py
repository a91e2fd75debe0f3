"""Real plotly.express and numpy code renders on plotfarm as Kaleido renders it.

Every case in tests/px_cases.py goes through the real pipeline (gateway,
RabbitMQ, a renderer's Pyodide with numpy and pandas, plotly.js in Chromium,
the SVG sanitiser). The same code runs in CPython with the same plotly, numpy
and pandas versions, and Kaleido (plotly's own exporter) renders that figure:
the oracle. The two SVGs must agree on trace groups per subplot, axes, images
and every visible text (tests/oracle.py, ``compare_svgs``).

The animation case renders its first frame: a static SVG shows the figure's
initial data (the first ``animation_frame`` value) with the slider and the
play/pause buttons; the frames themselves are not drawn.
"""

import pytest

from tests import oracle
from tests.px_cases import CASES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kaleido():
    with oracle.KaleidoOracle() as session:
        yield session


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_px_case_matches_kaleido(case, api, kaleido):
    result = await api.render(case.code, timeout=180, timeout_s=60)
    assert result["status"] == "done", result.get("error")
    ours = [figure["svg"] for figure in result["figures"]]
    reference = kaleido.render_code(case.code)
    assert len(ours) == len(reference), f"{len(ours)} figures, Kaleido {len(reference)}"
    assert oracle.compare_many(ours, reference) == []


async def test_animation_shows_its_first_frame(api):
    """What a static SVG of an animated px figure holds: the first frame, a slider, play/pause."""
    code = next(case.code for case in CASES if case.name == "animation")
    figure = oracle.run_user_code(code)[0]
    first_frame = figure["frames"][0]["name"]
    result = await api.render(code, timeout=180, timeout_s=60)
    assert result["status"] == "done", result.get("error")
    summary = oracle.summarize_svg(result["figures"][0]["svg"])
    # The slider names the frame shown; the traces drawn are the first frame's (one per continent).
    assert any(first_frame in text for text in summary.texts), f"no {first_frame!r} in {sorted(summary.texts)[:20]}"
    assert sum(summary.traces.values()) == len(figure["data"]), summary.traces
