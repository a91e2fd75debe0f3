import numpy as np
import pandas as pd
import plotly.express as px

rng = np.random.default_rng(7)
days = pd.date_range("2026-01-01", periods=120, freq="D")
df = pd.DataFrame({"day": days, "visits": 200 + rng.normal(0, 15, len(days)).cumsum()})
df["7-day mean"] = df["visits"].rolling(7).mean()
fig = px.line(df, x="day", y=["visits", "7-day mean"], title="Daily visits with a rolling mean")
fig.show()
