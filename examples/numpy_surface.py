import numpy as np
import plotly.graph_objects as go

x = np.linspace(-3, 3, 80)
y = np.linspace(-3, 3, 80)
xx, yy = np.meshgrid(x, y)
z = np.sin(xx) * np.cos(yy) * np.exp(-(xx**2 + yy**2) / 8)
fig = go.Figure(go.Contour(x=x, y=y, z=z, colorscale="RdBu"))
fig.update_layout(title="numpy: a damped sin·cos field")
fig.show()
