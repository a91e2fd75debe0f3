import math

import plotly.graph_objects as go

z = [[math.sin(x / 4) * math.cos(y / 4) for x in range(30)] for y in range(20)]
fig = go.Figure(data=go.Heatmap(z=z, colorscale="Viridis"))
fig.update_layout(title="sin(x)·cos(y)")
fig.show()
