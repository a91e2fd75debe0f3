"""The job's vocabulary (shared/vocabulary.py) is the one definition: everything else follows it.

Checked two ways: the files generated from it are current; and, on a scratch copy of the
project with one error type added and one bound changed, every consumer follows without any
other edit: the JavaScript module, the gateway's validation and OpenAPI document, the MCP
tool's parameters, the metrics' labels, and the docs' table.
"""

import ast
import json
import shutil
import subprocess
import sys

from shared import codegen, vocabulary
from shared.settings import PROJECT_ROOT
from shared.vocabulary import ERROR_MEANINGS, ErrorType

CAPTURE = PROJECT_ROOT / "web" / "runtime" / "plotfarm_capture.py"


def test_the_generated_files_are_current():
    for path, text in codegen.generated().items():
        assert path.read_text() == text, f"{path.name} is not current: run `python -m shared.codegen`"


def test_every_error_type_says_what_it_means():
    assert set(ERROR_MEANINGS) == set(ErrorType)
    assert all(meaning and "\n" not in meaning for meaning in ERROR_MEANINGS.values())
    table = vocabulary.error_table()
    assert all(f"`{kind}`" in table for kind in ErrorType)


def test_the_interpreters_own_error_classes_are_in_the_vocabulary():
    """plotfarm_capture runs inside Pyodide and cannot import shared/: its exception names must match."""
    tree = ast.parse(CAPTURE.read_text())
    own = {
        node.name for node in tree.body if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exceeded"))
    }
    assert own and own <= set(ErrorType), own - set(ErrorType)


def test_no_error_type_is_spelled_out_of_the_vocabulary():
    """Bare strings of plotfarm's error types only in the vocabulary and what it generates."""
    allowed = {codegen.VOCABULARY_JS, PROJECT_ROOT / "shared" / "vocabulary.py", CAPTURE}
    checked = [*PROJECT_ROOT.glob("services/**/*.py"), *PROJECT_ROOT.glob("shared/*.py")]
    checked += [p for p in (PROJECT_ROOT / "web").rglob("*.*js") if "node_modules" not in p.parts]
    own = {kind.value for kind in ErrorType} - {"TimeoutError", "MemoryError", "RecursionError"}  # Python's too
    found = []
    for path in checked:
        if path in allowed:
            continue
        text = path.read_text()
        found += [
            f"{path.relative_to(PROJECT_ROOT)}: {kind}" for kind in own if f'"{kind}"' in text or f"'{kind}'" in text
        ]
    assert not found, found


CHECK_CONSUMERS = r"""
import asyncio, json, re
from shared.settings import Settings
from shared.vocabulary import javascript, error_table
from shared.metrics import error_type_label
from services.gateway.openapi import openapi_document
from services.gateway.validation import InvalidRequest, parse_job_request
from services.mcp.app import tool_parameters

settings = Settings(_env_file=None, max_timeout_s=45)
out = {}
out["js"] = "\"CHECKED_BY_TEST\": \"CheckedByTest\"" in javascript() and '"maximum": 4321' in javascript()
out["docs"] = "`CheckedByTest`" in error_table()
out["metrics"] = error_type_label("CheckedByTest") == "CheckedByTest"
schema = openapi_document(settings, keys_enabled=False)["components"]["schemas"]["JobRequest"]["properties"]
out["openapi"] = [schema["width"]["anyOf"][0]["maximum"], schema["timeout_s"]["anyOf"][0]["maximum"]]
def accepted(body):
    try:
        parse_job_request(json.dumps(body).encode(), settings)
        return True
    except InvalidRequest:
        return False
out["gateway"] = [accepted({"code": "x", "width": 4321}), accepted({"code": "x", "width": 4322}),
                  accepted({"code": "x", "timeout_s": 45}), accepted({"code": "x", "timeout_s": 46})]
width = next(p for p in tool_parameters(settings) if p.name == "width")
timeout = next(p for p in tool_parameters(settings) if p.name == "timeout_s")
from pydantic import TypeAdapter
out["mcp"] = [TypeAdapter(width.annotation).json_schema()["anyOf"][0]["maximum"],
              TypeAdapter(timeout.annotation).json_schema()["anyOf"][0]["maximum"]]
print(json.dumps(out))
"""


def test_a_new_error_type_and_a_changed_bound_reach_every_consumer(tmp_path):
    scratch = tmp_path / "plotfarm"
    for part in ("shared", "services", "web/runtime"):
        shutil.copytree(PROJECT_ROOT / part, scratch / part, ignore=shutil.ignore_patterns("__pycache__"))
    source = (scratch / "shared" / "vocabulary.py").read_text()
    source = source.replace(
        '    RENDERER_ERROR = "RendererError"\n',
        '    RENDERER_ERROR = "RendererError"\n    CHECKED_BY_TEST = "CheckedByTest"\n',
    )
    source = source.replace(
        '    ErrorType.RENDERER_ERROR: "',
        '    ErrorType.CHECKED_BY_TEST: "a type added by a test",\n    ErrorType.RENDERER_ERROR: "',
    )
    source = source.replace("WIDTH = Bound(minimum=50, maximum=5000)", "WIDTH = Bound(minimum=50, maximum=4321)")
    assert "CheckedByTest" in source and "4321" in source
    (scratch / "shared" / "vocabulary.py").write_text(source)
    env = {"PYTHONPATH": str(scratch), "PATH": "/usr/bin:/bin", "PLOTFARM_WEB_DIR": str(PROJECT_ROOT / "web")}
    generated = subprocess.run(
        [sys.executable, "-m", "shared.codegen"], cwd=scratch, env=env, capture_output=True, text=True
    )
    assert generated.returncode == 0, generated.stderr
    assert "CheckedByTest" in (scratch / "web" / "runtime" / "vocabulary.mjs").read_text()
    checked = subprocess.run(
        [sys.executable, "-c", CHECK_CONSUMERS], cwd=scratch, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    out = json.loads(checked.stdout.strip().splitlines()[-1])
    assert out == {
        "js": True,
        "docs": True,
        "metrics": True,
        "openapi": [4321, 45],
        "gateway": [True, False, True, False],
        "mcp": [4321, 45],
    }
