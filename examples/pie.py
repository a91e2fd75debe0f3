import plotly.graph_objects as go

fig = go.Figure(
    data=go.Pie(labels=["Oxygen", "Hydrogen", "Carbon", "Nitrogen"], values=[4500, 2500, 1053, 500], hole=0.3)
)
fig.update_layout(title="Share of elements")
fig.show()
