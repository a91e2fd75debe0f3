"""Maps, LaTeX and top-level await, offline, and the warnings that say what came out differently."""

import re

import pytest

pytestmark = pytest.mark.integration

SCOPES = ("world", "usa", "europe", "asia", "africa", "north america", "south america")


@pytest.mark.parametrize("resolution", [110, 50])
async def test_every_geo_scope_and_resolution_draws_offline(api, resolution):
    code = "import plotly.graph_objects as go\n"
    code += f"scopes = {list(SCOPES)!r}\n"
    code += (
        "for scope in scopes:\n"
        "    fig = go.Figure(go.Scattergeo(lat=[40], lon=[0], mode='markers'))\n"
        # fitbounds=False: plotly.js 4 otherwise zooms onto the one marker (its new default).
        f"    fig.update_geos(scope=scope, resolution={resolution}, fitbounds=False,"
        " showcountries=True, showlakes=True, showrivers=True)\n"
        "    fig.update_layout(title=f'scope {scope}')\n"
        "    fig.show()\n"
    )
    result = await api.render(code, timeout=180, timeout_s=60)
    assert result["status"] == "done", result.get("error")
    assert len(result["figures"]) == len(SCOPES)
    for figure, scope in zip(result["figures"], SCOPES, strict=True):
        svg = figure["svg"]
        assert f"scope {scope}" in svg
        # The base map arrived: its land and country layers are long paths, not just the frame.
        for layer in ("land", "countries"):
            match = re.search(rf'<g class="layer {layer}">\s*<path[^>]*? d="([^"]*)"', svg)
            assert match and len(match.group(1)) > 2000, f"{scope}: no {layer} in the SVG"


async def test_px_geo_functions_and_inline_geojson(api):
    code = """\
import plotly.express as px
df = px.data.gapminder().query("year == 2007")
px.scatter_geo(df, locations="iso_alpha", size="pop", title="scatter_geo").show()
px.choropleth(df, locations="iso_alpha", color="lifeExp", title="choropleth").show()
px.line_geo(df.query("continent == 'Oceania'"), locations="iso_alpha", title="line_geo").show()
square = {"type": "FeatureCollection", "features": [{"type": "Feature", "id": "sq", "properties": {},
          "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]}}]}
px.choropleth(locations=["sq"], geojson=square, color=[1], title="inline geojson").update_geos(fitbounds="locations").show()
"""
    result = await api.render(code, timeout=180, timeout_s=60)
    assert result["status"] == "done", result.get("error")
    # What each must have drawn: markers, filled countries, lines, the inline polygon.
    drawn = {
        "scatter_geo": r'class="point"',
        "choropleth": r'class="choroplethlocation"',
        "line_geo": r'class="js-line"',
        "inline geojson": r'class="choroplethlocation"',
    }
    assert len(result["figures"]) == len(drawn)
    for figure, (title, mark) in zip(result["figures"], drawn.items(), strict=True):
        svg = figure["svg"]
        assert title in svg, title
        assert len(re.findall(mark, svg)) >= 1, f"{title}: nothing drawn ({mark})"
        if title != "inline geojson":
            assert re.search(r'<g class="layer land">\s*<path[^>]*? d="[^"]{2000,}', svg), f"{title}: no base map"
    assert result["warnings"] == []


async def test_tile_maps_draw_without_tiles_and_say_so(api):
    code = """\
import plotly.express as px
fig = px.scatter_map(lat=[45, 46], lon=[5, 6], zoom=5, title="tile map")
fig.update_layout(map_layers=[{"sourcetype": "raster", "source": ["https://tiles.example/{z}/{x}/{y}.png"], "below": "traces"}])
fig.show()
"""
    result = await api.render(code, timeout=120, timeout_s=30)
    assert result["status"] == "done", result.get("error")  # never "Map error."
    assert "tile map" in result["figures"][0]["svg"]
    warnings = " | ".join(result["warnings"])
    assert (
        "base-map tiles are not loaded offline" in warnings
        and "layer(s) with tiles from a URL were left out" in warnings
    )
    assert "scattermap is drawn with WebGL" in warnings


async def test_latex_is_typeset_in_titles_axes_annotations_legends_and_ticks(api):
    code = r"""
import plotly.graph_objects as go
fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 4], name=r"$\beta_1$"))
fig.update_layout(title=r"$\alpha^2 + \sqrt{x}$", xaxis_title=r"$x_i$", showlegend=True)
fig.update_yaxes(tickvals=[1, 4], ticktext=[r"$\frac{1}{2}$", r"$\pi$"])
fig.add_annotation(x=1.5, y=2, text=r"$\int_0^1 f$")
fig.show()
"""
    result = await api.render(code, timeout=120, timeout_s=30)
    assert result["status"] == "done", result.get("error")
    svg = result["figures"][0]["svg"]
    for group in (
        "gtitle-math-group",
        "xtitle-math-group",
        "legendtext-math-group",
        "ytick",
        "annotation-text-math-group",
    ):
        assert group in svg, group
    assert svg.count("MJX-") > 5  # MathJax glyphs (SVG paths), not the raw TeX


async def test_a_job_without_latex_never_typesets(api):
    result = await api.render(
        "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).update_layout(title='no math').show()"
    )
    assert result["status"] == "done" and "math-group" not in result["figures"][0]["svg"]


async def test_top_level_await(api):
    code = (
        "import asyncio\nawait asyncio.sleep(0.05)\nprint('awaited')\n"
        "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).update_layout(title='after await').show()"
    )
    result = await api.render(code)
    assert result["status"] == "done", result.get("error")
    assert result["stdout"] == "awaited\n" and "after await" in result["figures"][0]["svg"]
    failing = await api.render("import asyncio\nawait asyncio.sleep(0)\n1 / 0")
    assert failing["error"]["type"] == "ZeroDivisionError" and 'File "<job>", line 3' in failing["error"]["traceback"]


async def test_warnings_about_webgl_and_missing_fonts(api):
    code = (
        "import plotly.graph_objects as go\n"
        "go.Figure(go.Scattergl(x=[1, 2], y=[2, 1])).update_layout(title='gl', font_family='No Such Font, Liberation Sans').show()"
    )
    result = await api.render(code)
    warnings = " | ".join(result["warnings"])
    assert "scattergl is drawn with WebGL" in warnings
    assert 'font "No Such Font" is not installed here; its text uses "Liberation Sans"' in warnings
    plain = await api.render("import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).show()")
    assert plain["warnings"] == []  # plotly.js's own Open Sans is installed (make fonts)


async def test_too_many_figures_are_dropped_with_a_warning(api):
    code = "import plotly.graph_objects as go\nfor i in range(25):\n    go.Figure(go.Bar(y=[i])).update_layout(title=f'n{i}').show()"
    result = await api.render(code, timeout=120, timeout_s=30)
    assert result["status"] == "done", result.get("error")
    assert [f"n{i}<" in figure["svg"] for i, figure in enumerate(result["figures"])] == [True] * 20
    assert result["warnings"] == ["25 figures were shown; the first 20 were kept (the limit per job)"]
