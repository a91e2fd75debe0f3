import plotly.express as px

df = px.data.iris()
fig = px.scatter(
    df,
    x="sepal_width",
    y="sepal_length",
    color="species",
    size="petal_length",
    facet_col="species",
    title="Iris: sepal size by species",
)
fig.show()
