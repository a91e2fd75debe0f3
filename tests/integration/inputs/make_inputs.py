"""Writes the binary input files test_inputs.py sends with its jobs: sales.parquet and sales.xlsx.

Made once and committed, because the test environment (.venv) has neither pyarrow nor
openpyxl; they are written here by other builds than the ones that read them in the job
(PyPI's native pyarrow, not Pyodide's). To make them again:

    pip install --target /tmp/pa pyarrow==18.1.0 openpyxl==3.1.5
    PYTHONPATH=/tmp/pa .venv/bin/python tests/integration/inputs/make_inputs.py

The rows are :func:`rows` (test_inputs.py computes what the job must find from it too).
"""

import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
CITIES = ("Oslo", "Lima", "Pune")


def rows(n: int = 1000) -> dict[str, list]:
    """The table both files hold: a text, a float, an int and a date column."""
    start = datetime.date(2026, 1, 1)
    return {
        "city": [CITIES[i % 3] for i in range(n)],
        "amount": [i * 0.5 for i in range(n)],
        "units": [i % 7 for i in range(n)],
        "day": [start + datetime.timedelta(days=i % 365) for i in range(n)],
    }


def main() -> None:
    import pandas as pd

    frame = pd.DataFrame(rows())
    frame["day"] = pd.to_datetime(frame["day"])
    frame.to_parquet(HERE / "sales.parquet", engine="pyarrow", index=False)  # snappy, pyarrow's default
    frame.to_excel(HERE / "sales.xlsx", engine="openpyxl", index=False, sheet_name="sales")


if __name__ == "__main__":
    main()
