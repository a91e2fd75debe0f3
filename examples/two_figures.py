import plotly.graph_objects as go

for title, ys in [("First figure", [1, 3, 2]), ("Second figure", [3, 1, 2])]:
    fig = go.Figure(go.Scatter(y=ys, mode="lines+markers"))
    fig.update_layout(title=title)
    fig.show()
