import plotly.graph_objects as go

fig = go.Figure(data=go.Bar(x=["apples", "pears", "plums"], y=[12, 7, 9], marker_color="#3b82f6"))
fig.update_layout(title="Fruit sold this week")
fig.show()
