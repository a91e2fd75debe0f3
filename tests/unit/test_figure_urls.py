"""No figure fetches anything: URLs plotly.js would load are left out, in the renderer and in the HTML page.

The renderer's rules (web/runtime/fidelity.mjs, run here under Node) and the
gateway's for the standalone HTML (shared/figure_files.py, for
results published before the renderer had them) are checked on one figure
holding a URL in every place plotly.js loads one from. Every URL to be left
out has "BAD" in it; everything that must stay has "KEEP".
"""

import json
import re
import shutil
import subprocess

import pytest

from shared.figure_files import HTML_POLICY, standalone_html
from shared.settings import PROJECT_ROOT

PNG = "data:image/png;base64,iVBORw0KGgoKEEP="
FIGURE = {
    "data": [
        {"type": "choropleth", "geojson": "https://BAD.example/regions.geojson", "locations": ["a"], "z": [1]},
        {"type": "scattergeo", "geojson": "BAD/relative.geojson", "customdata": [{"url": "https://KEEP.example/row"}]},
        {"type": "choroplethmap", "geojson": {"type": "FeatureCollection", "features": [], "KEEP": "inline"}},
        {"type": "image", "source": "//BAD.example/protocol-relative.png"},
        {"type": "image", "source": PNG},
        {"type": "sankey", "link": {"source": [0, 1], "target": [1, 2], "value": [1, 1]}, "name": "KEEP-sankey"},
    ],
    "layout": {
        "title": {"text": "KEEP title", "font": {"style": "italic"}},
        "meta": {"source": "https://KEEP.example/meta"},
        "images": [
            {"source": "https://BAD.example/logo.png", "visible": True, "x": 0},
            {"source": "http://BAD.example/plain-http.png"},
            {"source": PNG, "name": "KEEP-image"},
        ],
        "map": {
            "style": {
                "version": 8,
                "sources": {},
                "layers": [],
                "glyphs": "https://BAD.example/{fontstack}/{range}.pbf",
            },
            "layers": [
                {"sourcetype": "raster", "source": ["https://BAD.example/tiles/{z}/{x}/{y}.png"]},
                {"sourcetype": "geojson", "source": "BAD-layer.geojson"},
                {
                    "sourcetype": "geojson",
                    "source": {"type": "FeatureCollection", "features": []},
                    "name": "KEEP-layer",
                },
            ],
        },
        "map2": {"style": {"version": 8, "sources": {"s": {"type": "geojson", "data": "https://BAD.example/s.json"}}}},
        "mapbox": {
            "style": "mapbox://styles/BAD/style",
            "layers": [{"sourcetype": "image", "source": "https://BAD.example/overlay.png"}],
        },
        "template": {
            "layout": {"images": [{"source": "https://BAD.example/template.png", "name": "KEEP-template"}]},
            "data": {"choropleth": [{"geojson": "https://BAD.example/template.geojson"}]},
        },
        "updatemenus": [
            {
                "buttons": [
                    {
                        "method": "relayout",
                        "args": [{"images[0].source": "https://BAD.example/button.png", "title.text": "KEEP button"}],
                    },
                    {"method": "relayout", "args": [{"map.style": "https://BAD.example/style.json"}]},
                    {"method": "restyle", "args": [{"geojson": ["https://BAD.example/restyle.geojson"]}]},
                ]
            }
        ],
    },
    "frames": [
        {
            "name": "KEEP-frame",
            "data": [{"geojson": "https://BAD.example/frame.geojson"}],
            "layout": {"images": [{"source": "https://BAD.example/frame.png"}]},
        }
    ],
}
KEPT = sorted(set(re.findall(r"KEEP[\w.-]*", json.dumps(FIGURE))))
LEFT_OUT = sorted(set(re.findall(r"[^\"]*BAD[^\"]*", json.dumps(FIGURE))))


def assert_no_url_left(figure: dict) -> None:
    text = json.dumps(figure)
    assert "BAD" not in text, text
    assert sorted(set(re.findall(r"KEEP[\w.-]*", text))) == KEPT
    assert figure["data"][4]["source"] == PNG and figure["layout"]["images"][2]["source"] == PNG
    assert figure["data"][5]["link"]["source"] == [0, 1]  # a sankey's links: numbers, no URL
    assert "visible" not in figure["layout"]["images"][0]  # it would be drawn from "undefined"


@pytest.fixture(scope="module")
def renderer_prepared() -> dict:
    """prepareFigure (the renderer's and the client page's) on FIGURE, run by Node."""
    node = shutil.which("node")
    assert node, "node is needed (make setup installs the web dependencies with it)"
    module = (PROJECT_ROOT / "web" / "runtime" / "fidelity.mjs").as_uri()
    script = (
        f"import {{ prepareFigure }} from {json.dumps(module)};\n"
        'let input = "";\n'
        "for await (const chunk of process.stdin) input += chunk;\n"
        "console.log(JSON.stringify(prepareFigure(JSON.parse(input), 1)));\n"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(FIGURE),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_renderer_leaves_out_every_url_plotly_would_load(renderer_prepared):
    assert_no_url_left(renderer_prepared["figure"])


def test_the_renderer_says_what_it_left_out(renderer_prepared):
    warnings = renderer_prepared["warnings"]
    assert "figure 1: layout image from https://BAD.example/logo.png was left out (jobs have no network)" in warnings
    assert "figure 1: GeoJSON from https://BAD.example/regions.geojson was left out (jobs have no network)" in warnings
    assert "figure 1: image from //BAD.example/protocol-relative.png was left out (jobs have no network)" in warnings
    # The map's own style and layers, as before: replaced and dropped, with their own sentences.
    assert any('the map style "custom" was drawn as a plain background' in warning for warning in warnings)
    assert "figure 1: 2 map layer(s) with tiles from a URL were left out (no network)" in warnings
    # One sentence per URL, up to ten; then one counts the rest.
    url_warnings = [warning for warning in warnings if "(jobs have no network)" in warning]
    assert len(url_warnings) == 11 and re.fullmatch(r"figure 1: \d+ more URLs were left out .*", url_warnings[-1])


def test_the_html_page_carries_its_policy_first_in_its_head():
    page = standalone_html(FIGURE, "/* plotly.js */")
    head = page.split("<head>", 1)[1]
    first = re.match(r'\s*<meta http-equiv="Content-Security-Policy" content="([^"]*)">', head)
    assert first, head[:200]
    header = {directive.split()[0]: directive for directive in HTML_POLICY.split("; ")}
    meta = {directive.split()[0]: directive for directive in first[1].split("; ")}
    assert meta == {name: value for name, value in header.items() if name != "sandbox"}  # what a <meta> can hold
    assert meta["connect-src"] == "connect-src 'none'" and meta["default-src"] == "default-src 'none'"


def test_the_html_page_holds_no_url_plotly_would_load():
    page = standalone_html(FIGURE, "/* plotly.js */")
    for url in LEFT_OUT:
        assert url not in page
    embedded = re.search(r'<script type="application/json" id="figure">(.*?)</script>', page, re.S)[1]
    assert_no_url_left(json.loads(embedded))
