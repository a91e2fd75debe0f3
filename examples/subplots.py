import plotly.graph_objects as go
from plotly.subplots import make_subplots

fig = make_subplots(rows=1, cols=2, subplot_titles=("Squares", "Cubes"))
xs = list(range(1, 8))
fig.add_trace(go.Scatter(x=xs, y=[x**2 for x in xs], name="x²"), row=1, col=1)
fig.add_trace(go.Bar(x=xs, y=[x**3 for x in xs], name="x³"), row=1, col=2)
fig.update_layout(title="Two panels, one figure")
fig.show()
