"""One small figure per plotly.js trace type: every trace class in ``plotly.graph_objects``.

Each case is code as a user would send it (a figure with a title, ``fig.show()``),
deterministic, and needing nothing from the network on plotfarm. tests/integration/
test_fidelity.py renders each on plotfarm and with Kaleido (the same code in
CPython) and compares them; ``KNOWN_DIFFERENCES`` says where and why they differ.
"""

GO = "import plotly.graph_objects as go\n"
NP = "import numpy as np\nimport plotly.graph_objects as go\n"


def case(trace: str, body: str, *, numpy: bool = False) -> str:
    return (NP if numpy else GO) + body + f"\nfig.update_layout(title='{trace} trace')\nfig.show()\n"


CASES: dict[str, str] = {
    "Bar": case("Bar", "fig = go.Figure(go.Bar(x=['a', 'b', 'c'], y=[3, 1, 2], name='bars'))"),
    "Barpolar": case("Barpolar", "fig = go.Figure(go.Barpolar(r=[3, 2, 4], theta=[0, 120, 240], name='polar bars'))"),
    "Box": case("Box", "fig = go.Figure(go.Box(y=[1, 2, 2, 3, 5, 8], name='box'))"),
    "Candlestick": case(
        "Candlestick",
        "fig = go.Figure(go.Candlestick(x=['2026-01-01', '2026-01-02', '2026-01-03'], open=[1, 2, 3], high=[2, 3, 4], low=[0.5, 1.5, 2], close=[1.5, 2.5, 3.5]))",
    ),
    "Carpet": case("Carpet", "fig = go.Figure(go.Carpet(a=[1, 1, 2, 2], b=[1, 2, 1, 2], y=[1, 2, 3, 4]))"),
    "Choropleth": case(
        "Choropleth",
        "fig = go.Figure(go.Choropleth(locations=['FRA', 'DEU', 'ESP', 'ITA'], z=[1, 2, 3, 4], locationmode='ISO-3'))",
    ),
    "Choroplethmap": case(
        "Choroplethmap",
        "square = {'type': 'FeatureCollection', 'features': [{'type': 'Feature', 'id': 'sq', 'properties': {}, "
        "'geometry': {'type': 'Polygon', 'coordinates': [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}]}\n"
        "fig = go.Figure(go.Choroplethmap(geojson=square, locations=['sq'], z=[1]))\n"
        "fig.update_layout(map={'center': {'lat': 0.5, 'lon': 0.5}, 'zoom': 6})",
    ),
    "Cone": case("Cone", "fig = go.Figure(go.Cone(x=[1, 2], y=[1, 2], z=[1, 2], u=[1, 0], v=[0, 1], w=[1, 1]))"),
    "Contour": case("Contour", "fig = go.Figure(go.Contour(z=[[1, 2, 3], [3, 2, 1], [2, 3, 1]]))"),
    "Contourcarpet": case(
        "Contourcarpet",
        "fig = go.Figure([go.Carpet(a=[1, 1, 2, 2], b=[1, 2, 1, 2], y=[1, 2, 3, 4], carpet='c'), "
        "go.Contourcarpet(a=[1, 1, 2, 2], b=[1, 2, 1, 2], z=[1, 2, 3, 4], carpet='c')])",
    ),
    "Densitymap": case(
        "Densitymap",
        "fig = go.Figure(go.Densitymap(lat=[45, 45.1, 45.2], lon=[5, 5.1, 5.2], z=[1, 2, 3], radius=20))\n"
        "fig.update_layout(map={'center': {'lat': 45.1, 'lon': 5.1}, 'zoom': 8})",
    ),
    "Funnel": case("Funnel", "fig = go.Figure(go.Funnel(y=['visits', 'carts', 'orders'], x=[100, 40, 10]))"),
    "Funnelarea": case("Funnelarea", "fig = go.Figure(go.Funnelarea(values=[5, 3, 1], text=['one', 'two', 'three']))"),
    "Heatmap": case("Heatmap", "fig = go.Figure(go.Heatmap(z=np.arange(12).reshape(3, 4)))", numpy=True),
    "Histogram": case(
        "Histogram", "fig = go.Figure(go.Histogram(x=np.random.default_rng(0).normal(size=200)))", numpy=True
    ),
    "Histogram2d": case(
        "Histogram2d",
        "rng = np.random.default_rng(0)\nfig = go.Figure(go.Histogram2d(x=rng.normal(size=300), y=rng.normal(size=300)))",
        numpy=True,
    ),
    "Histogram2dContour": case(
        "Histogram2dContour",
        "rng = np.random.default_rng(0)\nfig = go.Figure(go.Histogram2dContour(x=rng.normal(size=300), y=rng.normal(size=300)))",
        numpy=True,
    ),
    "Icicle": case(
        "Icicle",
        "fig = go.Figure(go.Icicle(labels=['root', 'a', 'b'], parents=['', 'root', 'root'], values=[0, 2, 3]))",
    ),
    "Image": case(
        "Image", "fig = go.Figure(go.Image(z=np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5))", numpy=True
    ),
    "Indicator": case(
        "Indicator", "fig = go.Figure(go.Indicator(mode='number+delta', value=42, delta={'reference': 40}))"
    ),
    "Isosurface": case(
        "Isosurface",
        "x, y, z = np.mgrid[-1:1:4j, -1:1:4j, -1:1:4j]\n"
        "fig = go.Figure(go.Isosurface(x=x.ravel(), y=y.ravel(), z=z.ravel(), value=(x**2 + y**2 + z**2).ravel(), isomin=0.5, isomax=1))",
        numpy=True,
    ),
    "Mesh3d": case("Mesh3d", "fig = go.Figure(go.Mesh3d(x=[0, 1, 0, 0], y=[0, 0, 1, 0], z=[0, 0, 0, 1], alphahull=0))"),
    "Ohlc": case(
        "Ohlc",
        "fig = go.Figure(go.Ohlc(x=['2026-01-01', '2026-01-02'], open=[1, 2], high=[2, 3], low=[0.5, 1.5], close=[1.5, 2.5]))",
    ),
    "Parcats": case(
        "Parcats",
        "fig = go.Figure(go.Parcats(dimensions=[{'label': 'a', 'values': ['x', 'y', 'x']}, {'label': 'b', 'values': ['u', 'u', 'v']}]))",
    ),
    "Parcoords": case(
        "Parcoords",
        "fig = go.Figure(go.Parcoords(dimensions=[{'label': 'a', 'values': [1, 2, 3]}, {'label': 'b', 'values': [3, 1, 2]}]))",
    ),
    "Pie": case("Pie", "fig = go.Figure(go.Pie(labels=['a', 'b', 'c'], values=[3, 2, 1]))"),
    "Quiver": case(
        "Quiver", "fig = go.Figure(go.Quiver(x=[0, 1, 2], y=[0, 1, 0], u=[1, 0, -1], v=[0, 1, 0], name='arrows'))"
    ),
    "Sankey": case(
        "Sankey",
        "fig = go.Figure(go.Sankey(node={'label': ['in', 'out', 'lost']}, link={'source': [0, 0], 'target': [1, 2], 'value': [8, 2]}))",
    ),
    "Scatter": case(
        "Scatter", "fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[2, 1, 3], mode='lines+markers', name='line'))"
    ),
    "Scatter3d": case(
        "Scatter3d", "fig = go.Figure(go.Scatter3d(x=[1, 2, 3], y=[3, 1, 2], z=[2, 3, 1], mode='markers'))"
    ),
    "Scattercarpet": case(
        "Scattercarpet",
        "fig = go.Figure([go.Carpet(a=[1, 1, 2, 2], b=[1, 2, 1, 2], y=[1, 2, 3, 4], carpet='c'), "
        "go.Scattercarpet(a=[1, 2], b=[1, 2], carpet='c', mode='markers')])",
    ),
    "Scattergeo": case(
        "Scattergeo",
        "fig = go.Figure(go.Scattergeo(lat=[48.9, 40.7], lon=[2.35, -74.0], text=['Paris', 'New York'], mode='markers+text'))",
    ),
    "Scattergl": case(
        "Scattergl", "fig = go.Figure(go.Scattergl(x=np.arange(50), y=np.sin(np.arange(50))))", numpy=True
    ),
    "Scattermap": case(
        "Scattermap",
        "fig = go.Figure(go.Scattermap(lat=[45, 46], lon=[5, 6], mode='markers'))\n"
        "fig.update_layout(map={'center': {'lat': 45.5, 'lon': 5.5}, 'zoom': 5})",
    ),
    "Scatterpolar": case(
        "Scatterpolar", "fig = go.Figure(go.Scatterpolar(r=[1, 2, 3], theta=[0, 90, 180], mode='lines'))"
    ),
    "Scatterpolargl": case("Scatterpolargl", "fig = go.Figure(go.Scatterpolargl(r=[1, 2, 3], theta=[0, 90, 180]))"),
    "Scattersmith": case("Scattersmith", "fig = go.Figure(go.Scattersmith(real=[0.5, 1, 2], imag=[0.5, 1, -1]))"),
    "Scatterternary": case(
        "Scatterternary", "fig = go.Figure(go.Scatterternary(a=[0.2, 0.5], b=[0.3, 0.2], c=[0.5, 0.3], mode='markers'))"
    ),
    "Splom": case(
        "Splom",
        "fig = go.Figure(go.Splom(dimensions=[{'label': 'a', 'values': [1, 2, 3]}, {'label': 'b', 'values': [2, 3, 1]}]))",
    ),
    "Streamtube": case(
        "Streamtube",
        "x, y, z = [c.ravel() for c in np.mgrid[0:2:3j, 0:2:3j, 0:2:3j]]\n"
        "fig = go.Figure(go.Streamtube(x=x, y=y, z=z, u=np.ones(27), v=np.zeros(27), w=np.zeros(27)))",
        numpy=True,
    ),
    "Sunburst": case(
        "Sunburst",
        "fig = go.Figure(go.Sunburst(labels=['root', 'a', 'b'], parents=['', 'root', 'root'], values=[0, 2, 3]))",
    ),
    "Surface": case("Surface", "fig = go.Figure(go.Surface(z=[[1, 2, 3], [2, 3, 4], [3, 4, 5]]))"),
    "Table": case(
        "Table", "fig = go.Figure(go.Table(header={'values': ['name', 'n']}, cells={'values': [['a', 'b'], [1, 2]]}))"
    ),
    "Treemap": case(
        "Treemap",
        "fig = go.Figure(go.Treemap(labels=['root', 'a', 'b'], parents=['', 'root', 'root'], values=[0, 2, 3]))",
    ),
    "Violin": case(
        "Violin", "fig = go.Figure(go.Violin(y=np.random.default_rng(0).normal(size=100), name='v'))", numpy=True
    ),
    "Volume": case(
        "Volume",
        "x, y, z = np.mgrid[-1:1:4j, -1:1:4j, -1:1:4j]\n"
        "fig = go.Figure(go.Volume(x=x.ravel(), y=y.ravel(), z=z.ravel(), value=(x * y * z).ravel(), isomin=-0.5, isomax=0.5, opacity=0.2))",
        numpy=True,
    ),
    "Waterfall": case(
        "Waterfall",
        "fig = go.Figure(go.Waterfall(x=['start', 'up', 'down'], y=[10, 5, -3], measure=['absolute', 'relative', 'relative']))",
    ),
}

# Where plotfarm and Kaleido do not draw the same thing, and why. Everything else must match.
KNOWN_DIFFERENCES: dict[str, str] = {}

# Tile maps: every style but "white-bg" loads tiles from the internet, which neither side has
# here; plotfarm draws them on "white-bg" (and says so in a warning), so Kaleido is given the
# same style to compare with (Kaleido itself fails them offline with "Map error.").
MAP_TRACES = {"Choroplethmap", "Densitymap", "Scattermap"}
