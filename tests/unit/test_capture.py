"""The job runner that lives inside Pyodide (web/runtime/plotfarm_capture.py), run under CPython.

It is plain Python over plotly, so its rules (what counts as a figure, the
limits, the error messages in plotfarm's own words) can be checked here in
milliseconds; the integration and sandbox suites check it inside Pyodide.
"""

import importlib.util
import json

import pytest

from shared.page_contract import OutputLimits, RunOutput
from shared.settings import PROJECT_ROOT
from shared.vocabulary import ErrorType

LIMITS = OutputLimits(
    max_figures=3,
    max_figure_bytes=200_000,
    max_total_figure_bytes=400_000,
    max_svg_bytes=10**6,
    max_png_pixels=10**6,
    max_output_chars=100,
    max_figure_depth=64,
    max_png_bytes=10**6,
    max_pdf_bytes=10**6,
    max_error_chars=10_000,
    max_answer_chars=10**6,
).model_dump()


@pytest.fixture(scope="module")
def capture():
    spec = importlib.util.spec_from_file_location("plotfarm_capture", PROJECT_ROOT / "web/runtime/plotfarm_capture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_available(json.dumps({"numpy": "2.0.2", "pandas": "2.2.3", "plotly": "7.1.0"}))
    return module


def run(capture, code, **limits):
    """One run, checked against the contract (RunOutput) the renderer relies on."""
    output = json.loads(capture.run(code, json.dumps({**LIMITS, **limits})))
    RunOutput.model_validate(output)
    return output


def test_every_show_is_a_figure_in_order(capture):
    out = run(capture, "import plotly.graph_objects as go\nfor n in (1, 2):\n    go.Figure(go.Bar(y=[n])).show()")
    assert out["error"] is None
    assert [figure["data"][0]["y"] for figure in out["figures"]] == [[1], [2]]  # figures are objects, encoded once


def test_a_figure_left_in_fig_is_rendered_and_no_figure_is_an_error(capture):
    assert len(run(capture, "import plotly.graph_objects as go\nfig = go.Figure()")["figures"]) == 1
    assert run(capture, "x = 1")["error"]["type"] == "NoFigureError"


def test_limits(capture):
    out = run(capture, "import plotly.graph_objects as go\nfor n in range(5):\n    go.Figure(go.Bar(y=[n])).show()")
    assert out["error"] is None and [figure["data"][0]["y"] for figure in out["figures"]] == [[0], [1], [2]]
    assert out["warnings"] == ["5 figures were shown; the first 3 were kept (the limit per job)"]
    out = run(capture, "import plotly.graph_objects as go\ngo.Figure(go.Scatter(y=list(range(50_000)))).show()")
    assert out["error"]["type"] == ErrorType.OUTPUT_LIMIT_EXCEEDED and "bytes of JSON" in out["error"]["message"]
    out = run(capture, "print('x' * 500)\nimport plotly.graph_objects as go\ngo.Figure().show()")
    assert out["stdout"].startswith("x" * 100) and "output truncated" in out["stdout"]


def test_a_missing_module_is_explained_without_pip(capture):
    out = run(capture, "import statsmodels.api as sm")
    assert out["error"]["type"] == "ModuleNotFoundError"
    message = out["error"]["message"]
    assert "not available in plotfarm" in message and "trendline" in message
    assert "pip" not in message and "pip" not in out["error"]["traceback"]
    assert 'File "<job>", line 1' in out["error"]["traceback"]


def test_an_unknown_module_lists_what_is_available(capture):
    message = run(capture, "import seaborn")["error"]["message"]
    assert "'seaborn' is not available" in message and "numpy 2.0.2" in message and "pandas 2.2.3" in message


def test_optional_dependency_messages_are_rewritten(capture):
    code = "raise ImportError(\"Missing optional dependency 'openpyxl'.  Use pip or conda to install openpyxl.\")"
    message = run(capture, code)["error"]["message"]
    assert "openpyxl" in message and "pip" not in message


def test_network_errors_say_there_is_no_network(capture):
    code = "import urllib.error\nraise urllib.error.URLError('unknown url type: https')"
    out = run(capture, code)
    assert out["error"]["type"] == "URLError" and "no network access" in out["error"]["message"]


def test_numpy_memory_errors_are_memory_errors(capture):
    out = run(capture, "import numpy as np\nnp.ones((10**6, 10**6))")
    assert out["error"]["type"] == "MemoryError" and "Unable to allocate" in out["error"]["message"]


def test_tracebacks_start_at_the_users_code(capture):
    traceback = run(capture, "def f():\n    return 1 / 0\nf()")["error"]["traceback"]
    assert traceback.splitlines()[1].strip().startswith('File "<job>", line 3')
    assert "plotfarm_capture" not in traceback


def test_sys_exit_zero_is_not_a_failure(capture):
    out = run(capture, "import sys\nimport plotly.graph_objects as go\ngo.Figure().show()\nsys.exit(0)")
    assert out["error"] is None and len(out["figures"]) == 1


def test_imported_bytecode_names_cached_files(capture):
    paths = capture.imported_bytecode()
    assert paths and all(path.endswith(".pyc") and not path.startswith("//") for path in paths)


def test_imports_needed_reads_imports_and_what_plotly_express_implies(capture):
    code = "import plotly.express as px\nfrom scipy import stats\nimport os.path\nfrom . import x\n"
    assert capture.imports_needed(code) == ["numpy", "os", "pandas", "plotly", "scipy"]
    assert capture.imports_needed("from plotly import express as px") == ["numpy", "pandas", "plotly"]
    assert capture.imports_needed("import plotly.graph_objects as go") == ["plotly"]
    assert capture.imports_needed("def broken(:") == []


def test_package_loading_errors_are_part_of_the_message(capture):
    output = json.loads(capture.run("import scipy", json.dumps(LIMITS), json.dumps(["scipy: request failed"])))
    assert "could not be loaded" in output["error"]["message"] and "request failed" in output["error"]["message"]


def test_top_level_await_runs_as_a_coroutine(capture):
    import asyncio

    code = "import asyncio\nawait asyncio.sleep(0)\nimport plotly.graph_objects as go\nprint('awaited')\ngo.Figure().show()"
    pending = capture.run(code, json.dumps(LIMITS))
    assert not isinstance(pending, str)  # the caller awaits it
    output = json.loads(asyncio.run(pending))
    assert output["error"] is None and output["stdout"] == "awaited\n" and len(output["figures"]) == 1


def test_syntax_errors_are_reported_with_their_line(capture):
    out = run(capture, "x = (1,\nprint(x)")
    assert out["error"]["type"] == "SyntaxError" and "<job>" in out["error"]["traceback"]


def test_variables_are_plain_globals_before_the_code_runs(capture):
    variables = {"numbers": [1, 2.5, -3], "config": {"title": "t", "nested": {"k": [True, None]}}, "label": "x"}
    code = (
        "import json, plotly.graph_objects as go\n"
        "print(json.dumps([type(numbers).__name__, type(config).__name__, numbers, config, label]))\n"
        "fig = go.Figure(go.Scatter(y=numbers))\n"
    )
    output = json.loads(capture.run(code, json.dumps(LIMITS), "[]", json.dumps(variables)))
    assert output["error"] is None
    assert json.loads(output["stdout"]) == ["list", "dict", [1, 2.5, -3], variables["config"], "x"]


def test_a_variable_name_that_is_no_identifier_fails_the_job(capture):
    for name in ("class", "__builtins__", "a-b"):
        output = json.loads(capture.run("fig = {'data': []}", json.dumps(LIMITS), "[]", json.dumps({name: 1})))
        assert output["error"]["type"] == "NameError" and repr(name) in output["error"]["message"]
