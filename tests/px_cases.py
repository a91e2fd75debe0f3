"""Realistic user code for plotly.express (and graph_objects with numpy), one case per chart kind.

Each case is a string of Python exactly as a user would send it to plotfarm: imports at the
top, a figure with a title (so the text comparison in ``tests/oracle.py`` has something to
bite on), and ``fig.show()`` at the end. Every case is deterministic: data comes from the
datasets that ship inside the plotly wheel (``px.data.iris()``, ``tips()``, ``gapminder()``,
no network needed) or from ``np.random.default_rng(0)``, and nothing depends on the clock.

They need numpy and pandas, so they exercise the Pyodide runtime that carries them. The same
code run in CPython (``tests.oracle.run_user_code``) gives the reference figure.

None of them needs anything from the network when rendered: no geo traces (plotly.js fetches
topojson from a CDN), no tile maps, no LaTeX (MathJax).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class PxCase:
    name: str
    code: str
    #: the distinct plotly trace types of the figure, sorted (``sorted({t.type for t in fig.data})``).
    trace_types: tuple[str, ...]
    note: str = ""


CASES: list[PxCase] = [
    PxCase(
        "scatter_facet",
        """\
import plotly.express as px

df = px.data.iris()
fig = px.scatter(df, x="sepal_width", y="sepal_length", color="species", facet_col="species",
                 title="Iris: sepal size by species")
fig.show()
""",
        ("scatter",),
        "three facets (x, x2, x3 axes), one trace per species",
    ),
    PxCase(
        "line",
        """\
import plotly.express as px

df = px.data.gapminder().query("country in ['France', 'Japan', 'Brazil', 'Nigeria']")
fig = px.line(df, x="year", y="lifeExp", color="country", markers=True,
              title="Life expectancy, 1952-2007")
fig.update_layout(yaxis_title="life expectancy (years)")
fig.show()
""",
        ("scatter",),
    ),
    PxCase(
        "bar",
        """\
import plotly.express as px

df = px.data.tips().groupby(["day", "sex"], as_index=False)["total_bill"].sum()
fig = px.bar(df, x="day", y="total_bill", color="sex", barmode="group",
             category_orders={"day": ["Thur", "Fri", "Sat", "Sun"]},
             title="Total bills by day and sex")
fig.show()
""",
        ("bar",),
    ),
    PxCase(
        "histogram",
        """\
import plotly.express as px

df = px.data.tips()
fig = px.histogram(df, x="total_bill", color="time", nbins=20, barmode="overlay", opacity=0.7,
                   title="Distribution of total bills")
fig.show()
""",
        ("histogram",),
    ),
    PxCase(
        "box",
        """\
import plotly.express as px

df = px.data.tips()
fig = px.box(df, x="day", y="total_bill", color="smoker", notched=True,
             category_orders={"day": ["Thur", "Fri", "Sat", "Sun"]},
             title="Total bill by day, smokers vs non-smokers")
fig.show()
""",
        ("box",),
    ),
    PxCase(
        "violin",
        """\
import plotly.express as px

df = px.data.tips()
fig = px.violin(df, x="sex", y="tip", color="sex", box=True, points="all",
                title="Tips by sex")
fig.show()
""",
        ("violin",),
        "points='all' jitter uses plotly.js's seeded pseudo-random, so it is deterministic",
    ),
    PxCase(
        "pie",
        """\
import plotly.express as px

df = px.data.tips()
fig = px.pie(df, values="tip", names="day", hole=0.3, title="Share of tips by day")
fig.show()
""",
        ("pie",),
    ),
    PxCase(
        "sunburst",
        """\
import plotly.express as px

df = px.data.tips()
fig = px.sunburst(df, path=["day", "time", "sex"], values="total_bill",
                  title="Total bill: day, then time, then sex")
fig.show()
""",
        ("sunburst",),
    ),
    PxCase(
        "treemap",
        """\
import plotly.express as px

df = px.data.gapminder().query("year == 2007")
fig = px.treemap(df, path=[px.Constant("World"), "continent"], values="pop",
                 color="lifeExp", color_continuous_scale="RdBu",
                 title="World population 2007 by continent")
fig.show()
""",
        ("treemap",),
        "continents only: a country-level treemap hides most labels that do not fit, which depends on font metrics",
    ),
    PxCase(
        "density_heatmap",
        """\
import plotly.express as px

df = px.data.tips()
fig = px.density_heatmap(df, x="total_bill", y="tip", nbinsx=20, nbinsy=20,
                         title="Tips against total bill (counts)")
fig.show()
""",
        ("histogram2d",),
    ),
    PxCase(
        "imshow_numpy",
        """\
import numpy as np
import plotly.express as px

rng = np.random.default_rng(0)
z = rng.random((20, 30))
fig = px.imshow(z, color_continuous_scale="Viridis", labels={"color": "value"},
                title="Random matrix (seed 0)")
fig.show()
""",
        ("heatmap",),
    ),
    PxCase(
        "scatter_matrix",
        """\
import plotly.express as px

df = px.data.iris()
fig = px.scatter_matrix(df, dimensions=["sepal_length", "sepal_width", "petal_length", "petal_width"],
                        color="species", title="Iris scatter matrix")
fig.show()
""",
        ("splom",),
        "splom is WebGL: its points are an embedded <image>, only axes and text are SVG",
    ),
    PxCase(
        "parallel_coordinates",
        """\
import plotly.express as px

df = px.data.iris()
fig = px.parallel_coordinates(df, color="species_id",
                              dimensions=["sepal_length", "sepal_width", "petal_length", "petal_width"],
                              color_continuous_scale=px.colors.diverging.Tealrose, color_continuous_midpoint=2,
                              title="Iris in parallel coordinates")
fig.show()
""",
        ("parcoords",),
        "parcoords lines are WebGL (an embedded <image>); axes and labels are SVG",
    ),
    PxCase(
        "timeline",
        """\
import pandas as pd
import plotly.express as px

df = pd.DataFrame([
    dict(Task="Design", Start="2024-01-01", Finish="2024-02-15", Owner="Ana"),
    dict(Task="Build", Start="2024-02-01", Finish="2024-04-30", Owner="Ben"),
    dict(Task="Test", Start="2024-04-01", Finish="2024-05-31", Owner="Ana"),
    dict(Task="Launch", Start="2024-06-01", Finish="2024-06-10", Owner="Chen"),
])
df["Start"] = pd.to_datetime(df["Start"])
df["Finish"] = pd.to_datetime(df["Finish"])
fig = px.timeline(df, x_start="Start", x_end="Finish", y="Task", color="Owner",
                  title="Project plan 2024")
fig.update_yaxes(autorange="reversed")
fig.show()
""",
        ("bar",),
        "a timeline is horizontal bars on a date axis",
    ),
    PxCase(
        "animation",
        """\
import plotly.express as px

df = px.data.gapminder()
fig = px.scatter(df, x="gdpPercap", y="lifeExp", size="pop", color="continent", hover_name="country",
                 animation_frame="year", log_x=True, size_max=45, range_x=[100, 100000], range_y=[25, 90],
                 title="Gapminder: wealth and health")
fig.show()
""",
        ("scatter",),
        "a static SVG shows only the first frame (1952) plus the slider and play/pause buttons; "
        "the other frames travel in the figure JSON but are never drawn",
    ),
    PxCase(
        "go_numpy_subplots",
        """\
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

rng = np.random.default_rng(0)
x = np.linspace(0, 4 * np.pi, 200)
fig = make_subplots(rows=1, cols=2, subplot_titles=("sin and cos", "normal sample"))
fig.add_trace(go.Scatter(x=x, y=np.sin(x), name="sin"), row=1, col=1)
fig.add_trace(go.Scatter(x=x, y=np.cos(x), name="cos", line=dict(dash="dash")), row=1, col=1)
fig.add_trace(go.Histogram(x=rng.normal(size=500), nbinsx=30, name="N(0, 1)"), row=1, col=2)
fig.update_layout(title="graph_objects with numpy arrays")
fig.show()
""",
        ("histogram", "scatter"),
    ),
    PxCase(
        "go_numpy_heatmap_contour",
        """\
import numpy as np
import plotly.graph_objects as go

x = np.linspace(-3, 3, 61)
y = np.linspace(-2, 2, 41)
xx, yy = np.meshgrid(x, y)
z = np.exp(-(xx ** 2 + yy ** 2)) * np.cos(2 * xx)
fig = go.Figure(go.Heatmap(x=x, y=y, z=z, colorscale="Cividis", colorbar=dict(title="z")))
fig.add_trace(go.Contour(x=x, y=y, z=z, contours_coloring="lines", showscale=False, line_width=1))
fig.add_annotation(x=0, y=0, text="peak", showarrow=True, arrowhead=2)
fig.update_layout(title="Heatmap with contour lines", xaxis_title="x", yaxis_title="y")
fig.show()
""",
        ("contour", "heatmap"),
    ),
]

CASES_BY_NAME: dict[str, PxCase] = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"
