import plotly.graph_objects as go

fig = go.Figure(data=go.Scatter(x=[1, 2, 3, 4], y=[10, 11, 12, 13], mode="lines+markers", name="growth"))
fig.update_layout(title="Example scatter", xaxis_title="x", yaxis_title="y")
fig.show()
