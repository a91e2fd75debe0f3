"""The client-side page (http://localhost:3000/client-plot) in a real browser.

The user's code runs in Pyodide in a Web Worker in the page, through the same
runtime the renderers use. Booting it takes ~10 s, so one page (in a browser
profile with a disk cache, as a visitor's would be) serves most tests, and a
second page in the same profile measures the repeat visit.
"""

import base64
import hashlib
import json
import re
import tempfile
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from services.gateway.pages import CONTENT_SECURITY_POLICY, page_policy
from tests.e2e.conftest import CHROMIUM, RECORDER, VIEWPORT, chromium_args, csp_violations, record, screenshot
from tests.px_cases import CASES_BY_NAME

pytestmark = pytest.mark.integration

BOOT = 180_000  # ms: Pyodide + plotly on a busy 2-core machine
RUN = 60_000
PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


@pytest.fixture(scope="module")
def profile(playwright):
    """A browser profile with a disk cache, like a visitor's (incognito contexts cache little in memory)."""
    with tempfile.TemporaryDirectory(prefix="plotfarm-profile-") as user_data_dir:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir, executable_path=CHROMIUM, args=chromium_args(), viewport=VIEWPORT
        )
        context.add_init_script(RECORDER)
        yield context
        context.close()


def visit(profile, e2e):
    """Open /client-plot and wait until Python is ready; the page, its init timings, and where its files came from."""
    page = profile.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    foreign = []
    gateway_origin = "{0.scheme}://{0.netloc}".format(urlsplit(e2e.gateway_url))
    page.on(
        "request",
        lambda request: (
            foreign.append(request.url)
            if not request.url.startswith((gateway_origin + "/", "blob:", "data:"))
            else None
        ),
    )
    page.foreign_requests = foreign
    page.goto(f"{e2e.gateway_url}/client-plot")
    expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=BOOT)
    init = page.evaluate("() => window.plotfarmClient.inits()[0]")
    # Resource Timing: transferSize 0 means the browser's cache answered.
    page_files = page.evaluate("() => performance.getEntriesByType('resource').map((e) => e.transferSize)")
    worker_files = page.workers[0].evaluate("() => performance.getEntriesByType('resource').map((e) => e.transferSize)")
    files = page_files + worker_files
    network = sum(1 for size in files if size > 0)
    return page, init, network, len(files), sum(files)


@pytest.fixture(scope="module")
def first_visit(profile, e2e):
    return visit(profile, e2e)


@pytest.fixture(scope="module")
def client_page(first_visit):
    return first_visit[0]


CODE = "#editor .cm-content"  # CodeMirror's editable area, inside the editor's shadow root


def set_code(page, code: str) -> None:
    """Type-in (select all, insert) ``code`` in the page's code editor, as a paste would."""
    expect(page.locator(CODE)).to_be_visible(timeout=RUN)
    page.locator(CODE).fill(code)
    assert page.evaluate("() => window.plotfarmClient.code()") == code


def run_local(page, code: str | None = None, example: str | None = None, *, keyboard: bool = False):
    """Run code (or an example) in the page; the run's record from window.plotfarmClient."""
    count = page.evaluate("() => window.plotfarmClient.runs().length")
    if example:
        page.select_option("#examples", example)
    if code is not None:
        set_code(page, code)
    expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=BOOT)
    if keyboard:
        page.locator(CODE).press("Control+Enter")
    else:
        page.click("#run")
    page.wait_for_function("(n) => window.plotfarmClient.runs().length > n", arg=count, timeout=RUN)
    return page.evaluate("() => window.plotfarmClient.runs().at(-1)")


def test_client_page_headers_and_cached_versioned_assets(e2e, playwright):
    request = playwright.request.new_context()
    try:
        response = request.get(f"{e2e.gateway_url}/client-plot")
        assert response.status == 200
        headers = response.headers
        html = response.text()
        # One inline script, the code editor's import map, allowed by its hash; nothing else inline.
        (import_map,) = re.findall(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)
        assert headers["content-security-policy"] == page_policy(import_map)
        directives = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
        assert directives["default-src"] == "'none'"
        digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
        # No 'unsafe-eval', no 'unsafe-inline'.
        assert directives["script-src"] == f"'self' 'wasm-unsafe-eval' 'sha256-{digest}'"
        # The page may start blob: workers (plotly.js's maps); the interpreter's worker script may not.
        assert directives["connect-src"] == "'self'" and directives["worker-src"] == "'self' blob:"
        assert "worker-src 'self';" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in directives["style-src-elem"]
        assert directives["require-trusted-types-for"] == "'script'"
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cross-origin-embedder-policy"] == "require-corp"
        assert headers["cache-control"] == "no-cache"

        urls = sorted(set(re.findall(r'(?:src|href)="(/assets/[0-9a-f]{12}/[^"]+)"', html)))
        assert any(u.endswith("/plotly/plotly.min.js") for u in urls) and any(
            u.endswith("/client/client.mjs") for u in urls
        )
        assert "http://" not in html.replace(e2e.viewer_url, "") and "https://" not in html  # no CDN
        build = urls[0].split("/")[2]
        editor_urls = json.loads(import_map)["imports"].values()
        assert all(url.startswith(f"/assets/{build}/editor/") for url in editor_urls)
        for path in (
            "client/client.mjs",
            "client/editor.mjs",
            "editor/codemirror/view/dist/index.js",
            "runtime/interpreter-worker.mjs",
            "pyodide/pyodide.asm.wasm",
            "manifest.json",
        ):
            asset = request.get(f"{e2e.gateway_url}/assets/{build}/{path}")
            assert asset.status == 200, path
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY  # the worker's own CSP
            assert asset.headers["cross-origin-embedder-policy"] == "require-corp"
        assert (
            request.get(f"{e2e.gateway_url}/assets/{build}/pyodide/pyodide.asm.wasm").headers["content-type"]
            == "application/wasm"
        )
        for missing in (
            "assets/000000000000/client/client.mjs",
            f"assets/{build}/renderer/index.html",
            f"assets/{build}/client/..%2F..%2Fshared%2Fsettings.py",
            f"assets/{build}/pyodide/package.json",
            f"assets/{build}/editor/codemirror/view/package.json",  # an editor package's entry file only
            f"assets/{build}/editor/codemirror/view/dist/index.cjs",
        ):
            assert request.get(f"{e2e.gateway_url}/{missing}").status == 404, missing
    finally:
        request.dispose()


def test_scatter_example_runs_in_the_browser_and_is_interactive(client_page):
    page = client_page
    assert page.evaluate("() => crossOriginIsolated") is True
    run = run_local(page, example="scatter", keyboard=True)  # Ctrl+Enter
    assert run["error"] is None and run["figures"] == 1
    plot = page.locator("#local-plots .js-plotly-plot")
    expect(plot).to_have_count(1)
    expect(plot.locator(".gtitle")).to_have_text("Example scatter")
    for metric in ("#metric-init", "#metric-exec", "#metric-total"):
        expect(page.locator(metric)).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))

    # Interactive: hover shows a value, dragging zooms.
    point = plot.locator(".scatterlayer .point").nth(1).bounding_box()
    page.mouse.move(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    expect(plot.locator(".hoverlayer .hovertext")).to_have_count(1)
    before = plot.evaluate("(div) => div._fullLayout.xaxis.range.slice()")
    area = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + area["width"] * 0.2, area["y"] + area["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.6, area["y"] + area["height"] * 0.7, steps=8)
    page.mouse.up()
    page.wait_for_function(
        "([div, x0]) => div._fullLayout.xaxis.range[0] !== x0", arg=[plot.element_handle(), before[0]]
    )
    expect(plot.locator(".modebar")).to_have_count(1)


def test_every_example_runs_and_output_is_text(client_page):
    page = client_page
    for name, figures in (("bar", 1), ("pie", 1), ("heatmap", 1), ("subplots", 1), ("two_figures", 2)):
        run = run_local(page, example=name)
        assert run["error"] is None and run["figures"] == figures, (name, run)
        expect(page.locator("#local-plots .js-plotly-plot")).to_have_count(figures)

    run = run_local(page, code=f"print({PAYLOAD!r})\nraise ValueError({PAYLOAD!r})\n")
    assert run["error"] == "ValueError"
    expect(page.locator("#local-stdout pre")).to_have_text(PAYLOAD + "\n")
    expect(page.locator("#local-error")).to_have_text(f"ValueError: {PAYLOAD}")
    expect(page.locator("#local-traceback pre")).to_contain_text("ValueError")

    code = (
        "import plotly.graph_objects as go\n"
        f"fig = go.Figure(go.Scatter(y=[1, 2]))\nfig.update_layout(title={PAYLOAD!r})\n"
        f"fig.add_annotation(text={PAYLOAD!r}, x=1, y=2)\nfig.show()\n"
    )
    assert run_local(page, code=code)["error"] is None
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#local script, #local [onerror]").count() == 0

    # Every example above, hover and zoom included, stayed inside the CSP and the page's own origin.
    assert csp_violations(page) == [] and page.errors == []
    assert page.foreign_requests == []


def worker_bytes(page) -> int:
    return page.workers[0].evaluate(
        "() => performance.getEntriesByType('resource').reduce((n, e) => n + e.transferSize, 0)"
    )


def test_numpy_pandas_and_plotly_express_load_on_demand(client_page):
    """A px example imports pandas: the page loads numpy and pandas then, verified, and only then."""
    page = client_page
    before = worker_bytes(page)
    run = run_local(page, example="px_iris")
    assert run["error"] is None and run["figures"] == 1, run
    assert {"numpy", "pandas"} <= set(run["packages"]), run["packages"]
    expect(page.locator("#local-plots .js-plotly-plot .gtitle")).to_have_text("Iris: sepal size by species")
    expect(page.locator("#local-state")).to_contain_text("loaded")
    loaded_bytes = worker_bytes(page) - before
    first = run

    run = run_local(page, example="pandas_timeseries")
    assert run["error"] is None and run["packages"] == [], run  # already there: nothing to load
    run = run_local(page, example="numpy_surface")
    assert run["error"] is None and run["figures"] == 1, run

    run = run_local(page, code=CASES_BY_NAME["parallel_coordinates"].code)  # WebGL lines, SVG axes
    assert run["error"] is None and run["figures"] == 1, run
    expect(page.locator("#local-plots .js-plotly-plot .parcoords")).to_have_count(1)

    run = run_local(page, code="import statsmodels.api as sm\n")
    assert run["error"] == "ModuleNotFoundError"
    expect(page.locator("#local-error")).to_contain_text("not available in plotfarm")
    expect(page.locator("#local-error")).not_to_contain_text("pip")
    assert csp_violations(page) == []
    record(
        f"client page: the first run that imports pandas loaded {', '.join(first['packages'])} "
        f"({loaded_bytes / 1e6:.1f} MB over the network) in {first['loadMs'] / 1000:.1f} s, then ran in "
        f"{first['runMs'] / 1000:.1f} s; total {first['totalMs'] / 1000:.1f} s"
    )


def test_maps_latex_and_top_level_await_in_the_browser(client_page):
    """Offline geo maps, tile maps without tiles, LaTeX with MathJax loaded only when a figure has some."""
    page = client_page
    assert page.evaluate("() => 'MathJax' in window") is False  # nothing typeset yet: not loaded
    code = (
        "import asyncio\nawait asyncio.sleep(0.01)\n"
        "import plotly.graph_objects as go\n"
        "go.Figure(go.Choropleth(locations=['FRA', 'BRA'], z=[1, 2])).update_layout(title='choropleth').show()\n"
        "fig = go.Figure(go.Scattermap(lat=[45], lon=[5]))\nfig.update_layout(title='tile map', map_style='open-street-map')\n"
        "fig.show()\n"
    )
    run = run_local(page, code=code)
    assert run["error"] is None and run["figures"] == 2, run
    plots = page.locator("#local-plots .js-plotly-plot")
    expect(plots.nth(0).locator(".choroplethlocation")).to_have_count(2)
    land = plots.nth(0).locator(".layer.land path").get_attribute("d") or ""
    assert len(land) > 500, "the base map did not arrive"
    expect(plots.nth(1).locator(".gtitle")).to_have_text("tile map")
    assert any("base-map tiles are not loaded offline" in warning for warning in run["warnings"]), run["warnings"]
    assert not any("WebGL" in warning for warning in run["warnings"])  # interactive here: WebGL is WebGL
    expect(page.locator("#local-state")).to_contain_text("base-map tiles are not loaded offline")
    assert page.evaluate("() => 'MathJax' in window") is False

    run = run_local(
        page,
        code="import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).update_layout(title=r'$\\alpha^2$').show()",
    )
    assert run["error"] is None, run
    expect(page.locator("#local-plots .gtitle-math-group")).to_have_count(1)
    assert page.evaluate("() => Boolean(window.MathJax && window.MathJax.version)") is True
    assert csp_violations(page) == [] and page.errors == []
    assert page.foreign_requests == []


def test_code_editor_loads_offline_with_python_highlighting(client_page, e2e):
    """CodeMirror replaces the text box: from this server alone, Python highlighted, inside the page's CSP."""
    page = client_page
    page.wait_for_function("() => window.plotfarmClient.editor() !== 'loading'", timeout=RUN)
    assert page.evaluate("() => window.plotfarmClient.editor()") == "ready"
    expect(page.locator("#code")).to_be_hidden()  # the fallback text box
    expect(page.locator("#editor .cm-editor")).to_have_count(1)
    set_code(page, "import numpy as np\nfor x in range(3):\n    print('hi', x)  # note\n")
    # Highlighting: the keywords, the string and the comment each in a colour of their own, unlike plain names.
    colour = "(e) => getComputedStyle(e).color"
    line = page.locator("#editor .cm-line")
    keyword = line.nth(0).locator("span", has_text="import").evaluate(colour)
    string = line.nth(2).locator("span", has_text="'hi'").evaluate(colour)
    comment = line.nth(2).locator("span", has_text="# note").evaluate(colour)
    plain = line.nth(1).evaluate(colour)
    assert len({keyword, string, comment, plain}) == 4, (keyword, string, comment, plain)
    # Its files came from this gateway's build, and no request left the origin.
    loaded = page.evaluate("() => performance.getEntriesByType('resource').map((e) => e.name)")
    assert any("/editor/codemirror/lang-python/dist/index.js" in url for url in loaded), loaded
    assert all(url.startswith(e2e.gateway_url + "/") for url in loaded if "/editor/" in url)
    assert page.foreign_requests == [] and csp_violations(page) == [] and page.errors == []
    files = page.evaluate(
        "() => performance.getEntriesByType('resource').filter((e) => /[/]editor([/]|[.]mjs)/.test(e.name))"
        ".map((e) => [e.transferSize, e.decodedBodySize])"
    )
    record(
        f"client page: the code editor (CodeMirror, {len(files)} files, {sum(f[1] for f in files) / 1e3:.0f} kB, "
        f"{sum(f[0] for f in files) / 1e3:.0f} kB over the network) replaced the text box "
        f"{page.evaluate('() => window.plotfarmClient.editorReadyAt()') / 1000:.2f} s after navigation"
    )


def test_editor_indents_matches_brackets_and_undoes(client_page):
    page = client_page
    set_code(page, "")
    editor = page.locator(CODE)
    editor.focus()
    code = "() => window.plotfarmClient.code()"
    page.keyboard.type("for x in range(3):")  # "(" closes itself; ")" steps over it
    page.keyboard.press("Enter")  # indents the block
    page.keyboard.type("print(x)")
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")  # dedents
    page.keyboard.type("y = [1]")
    assert page.evaluate(code) == "for x in range(3):\n    print(x)\ny = [1]"
    page.keyboard.press("Tab")  # indents the line
    assert page.evaluate(code) == "for x in range(3):\n    print(x)\n    y = [1]"
    page.keyboard.press("ArrowLeft")  # the caret beside "]": both brackets marked as a pair
    expect(page.locator("#editor .cm-matchingBracket")).to_have_count(2)
    page.keyboard.press("Control+z")  # history: the Tab undone
    assert page.evaluate(code) == "for x in range(3):\n    print(x)\ny = [1]"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "editor"  # Tab stayed in the editor
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")  # Esc, then Tab, leaves the editor
    assert page.evaluate("() => document.activeElement.id") not in ("editor", "code")


def test_ctrl_enter_in_the_editor_runs_the_code(client_page):
    page = client_page
    code = "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[3, 1, 2])).update_layout(title='keyboard').show()\n"
    run = run_local(page, code=code, keyboard=True)
    assert run["error"] is None and run["figures"] == 1, run
    expect(page.locator("#local-plots .js-plotly-plot .gtitle")).to_have_text("keyboard")
    assert page.evaluate("() => window.plotfarmClient.code()") == code  # no blank line inserted
    # Cmd+Enter (Meta) too, as on a Mac.
    count = page.evaluate("() => window.plotfarmClient.runs().length")
    expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=BOOT)
    page.locator(CODE).press("Meta+Enter")
    page.wait_for_function("(n) => window.plotfarmClient.runs().length > n", arg=count, timeout=RUN)
    assert page.evaluate("() => window.plotfarmClient.runs().at(-1)")["error"] is None
    assert page.evaluate("() => window.plotfarmClient.code()") == code


SALES_CSV = "region,sales\nnorth,12\nsouth,7\neast,30\n"
READ_SALES = (
    "import pandas as pd\nimport plotly.express as px\n"
    "df = pd.read_csv('sales.csv')\n"
    "px.bar(df, x='region', y='sales', title=f'{len(df)} regions from sales.csv').show()\n"
)


def drop_files(page, target: str, files: str) -> None:
    """Drop files made in the page (``files``: a JS expression giving File objects) onto ``target``."""
    transfer = page.evaluate_handle(
        f"() => {{ const t = new DataTransfer(); for (const f of {files}) t.items.add(f); return t; }}"
    )
    page.locator(target).dispatch_event("drop", {"dataTransfer": transfer})


def remove_all_files(page) -> None:
    for button in reversed(page.locator("#file-list .remove-file").all()):
        button.click()
    expect(page.locator("#file-list .file")).to_have_count(0)


def test_a_chosen_csv_file_is_read_by_pandas_in_the_local_run(client_page):
    page = client_page
    page.set_input_files(
        "#file-input", files=[{"name": "sales.csv", "mimeType": "text/csv", "buffer": SALES_CSV.encode()}]
    )
    expect(page.locator("#file-list .file-name")).to_have_text(["sales.csv"])
    expect(page.locator("#file-list .file-size")).to_have_text([f"{len(SALES_CSV)} B"])
    run = run_local(page, code=READ_SALES)
    assert run["error"] is None and run["figures"] == 1 and run["files"] == ["sales.csv"], run
    plot = page.locator("#local-plots .js-plotly-plot")
    expect(plot.locator(".gtitle")).to_have_text("3 regions from sales.csv")
    expect(plot.locator(".xtick text")).to_have_text(["north", "south", "east"])
    assert plot.evaluate("(div) => Array.from(div._fullData[0].y)") == [12, 7, 30]

    # Removed, it is gone from the next run's working directory.
    page.locator("#file-list .remove-file").click()
    expect(page.locator("#file-list .file")).to_have_count(0)
    run = run_local(page, code="import os\nprint(sorted(os.listdir('.')))\nopen('sales.csv')\n")
    assert run["error"] == "FileNotFoundError" and run["files"] == [], run
    expect(page.locator("#local-stdout pre")).not_to_contain_text("sales.csv")
    assert csp_violations(page) == [] and page.errors == [] and page.foreign_requests == []


def test_files_dropped_on_the_editor_are_added_not_pasted(client_page):
    page = client_page
    set_code(page, "print('unchanged')\n")
    drop_files(
        page,
        CODE,
        "[new File(['a,b\\n1,2\\n'], 'dropped.csv', {type: 'text/csv'}), new File([new Uint8Array(1500)], 'zeros.bin')]",
    )
    expect(page.locator("#file-list .file-name")).to_have_text(["dropped.csv", "zeros.bin"])
    expect(page.locator("#file-list .file-size")).to_have_text(["8 B", "1.5 kB"])
    expect(page.locator("#files-total")).to_contain_text("2 files, 1.5 kB of ")
    assert page.evaluate("() => window.plotfarmClient.code()") == "print('unchanged')\n"  # not pasted in
    code = (
        "import plotly.graph_objects as go\n"
        "row, n = open('dropped.csv').read().split()[1], len(open('zeros.bin', 'rb').read())\n"
        "go.Figure(go.Bar(y=[n])).update_layout(title=f'{row} {n}').show()\n"
    )
    run = run_local(page, code=code)
    assert run["error"] is None and run["files"] == ["dropped.csv", "zeros.bin"], run
    expect(page.locator("#local-plots .js-plotly-plot .gtitle")).to_have_text("1,2 1500")
    page.click("#clear-files")
    expect(page.locator("#file-list .file")).to_have_count(0)


def test_files_the_gateway_would_refuse_are_refused_on_the_page_with_the_limit_named(client_page):
    page = client_page
    inputs = page.evaluate("() => JSON.parse(document.getElementById('plotfarm-config').textContent).inputs")
    message = page.locator("#files-message")
    # Names: no path, not only dots, no control character, at most maxNameBytes of UTF-8.
    long_name = "é" * (inputs["maxNameBytes"] // 2) + ".csv"
    drop_files(
        page,
        "#local",
        f"[new File(['x'], '..'), new File(['x'], 'a\\\\b.csv'), new File(['x'], 'bell\\u0007.csv'), "
        f"new File(['x'], {json.dumps(long_name)}), new File(['x'], 'fine.csv')]",
    )
    expect(page.locator("#file-list .file-name")).to_have_text(["fine.csv"])
    for refused in (
        "“..” was not added",
        "a\\b.csv” was not added",
        "bell",
        f"longer than {inputs['maxNameBytes']} bytes",
    ):
        expect(message).to_contain_text(refused)
    # Bytes: one byte over the gateway's limit for the job's files together.
    drop_files(page, "#local", f"[new File([new Uint8Array({inputs['maxBytes']})], 'big.bin')]")
    expect(message).to_contain_text("“big.bin”")
    expect(message).to_contain_text(f"({inputs['maxBytes']} bytes, PLOTFARM_MAX_INPUT_BYTES)")
    expect(page.locator("#file-list .file-name")).to_have_text(["fine.csv"])
    # Count: one file more than the limit.
    drop_files(
        page, "#local", f"Array.from({{length: {inputs['maxFiles']}}}, (_, n) => new File(['x'], `f${{n}}.txt`))"
    )
    expect(page.locator("#file-list .file")).to_have_count(inputs["maxFiles"])
    expect(message).to_contain_text(
        f"“f{inputs['maxFiles'] - 1}.txt” was not added: a job takes at most {inputs['maxFiles']} files (PLOTFARM_MAX_INPUT_FILES)"
    )
    page.click("#clear-files")
    expect(page.locator("#file-list .file")).to_have_count(0)
    assert page.errors == []


def test_run_on_server_shows_the_server_result_beside_the_local_one(client_page, e2e):
    page = client_page
    run = run_local(page, example="subplots")
    assert run["error"] is None
    page.click("#run-server")
    page.wait_for_function("() => window.plotfarmClient.server().length > 0", timeout=RUN)
    server = page.evaluate("() => window.plotfarmClient.server().at(-1)")
    assert server.get("status") == "done", server
    image = page.locator("#server-plots img.svg")
    expect(image).to_have_count(1)
    assert image.get_attribute("src").startswith("blob:")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    for metric in ("#server-queued", "#server-run", "#server-svg", "#server-total", "#server-roundtrip"):
        expect(page.locator(metric)).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))
    expect(page.locator("#server-state")).to_contain_text("renderer-e2e")
    expect(page.locator("#server-detail a")).to_have_attribute("href", f"{e2e.viewer_url}/?job={server['jobId']}")
    assert csp_violations(page) == [] and page.errors == []
    for note in page.locator(".notifier-close").all():  # plotly.js's "double-click to zoom back out", from before
        note.click()
    expect(page.locator(".notifier-note")).to_have_count(0)
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, e2e, "client-plot.png")
    timings = server["timings"]
    record(
        "client page, subplots example: in the browser "
        f"exec {run['runMs']:.0f} ms, total {run['totalMs']:.0f} ms; "
        f"on the server queue {timings['queued_ms']:.0f} ms, "
        f"run {timings['run_ms']:.0f} ms, SVG {timings['svg_ms']:.0f} ms, total {timings['total_ms']:.0f} ms, "
        f"round trip from the page {server['roundTripMs']:.0f} ms"
    )


def test_run_on_server_sends_the_chosen_files(client_page, gateway):
    """The same CSV, sent with the code as files: {name: {base64}}, read by pandas on a renderer."""
    page = client_page
    remove_all_files(page)
    page.set_input_files(
        "#file-input", files=[{"name": "sales.csv", "mimeType": "text/csv", "buffer": SALES_CSV.encode()}]
    )
    expect(page.locator("#file-list .file-name")).to_have_text(["sales.csv"])
    set_code(page, READ_SALES)
    count = page.evaluate("() => window.plotfarmClient.server().length")
    page.click("#run-server")
    page.wait_for_function("(n) => window.plotfarmClient.server().length > n", arg=count, timeout=RUN)
    server = page.evaluate("() => window.plotfarmClient.server().at(-1)")
    assert server.get("status") == "done" and server["files"] == ["sales.csv"], server
    expect(page.locator("#server-plots img.svg")).to_have_count(1)
    svg = gateway.wait(server["jobId"], include_svg=True)["figures"][0]["svg"]
    assert "3 regions from sales.csv" in svg and all(region in svg for region in ("north", "south", "east"))
    remove_all_files(page)
    assert csp_violations(page) == [] and page.errors == []


def test_stop_recovers_from_a_runaway_loop(client_page):
    page = client_page
    set_code(page, "while True:\n    pass\n")
    page.click("#run")
    expect(page.locator("#engine")).to_have_attribute("data-state", "running")
    expect(page.locator("#stop")).to_be_enabled()
    page.wait_for_timeout(500)  # let it spin
    page.click("#stop")
    expect(page.locator("#local-error")).to_contain_text("Stopped")
    expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=BOOT)
    stopped = page.evaluate("() => window.plotfarmClient.runs().at(-1)")
    assert stopped["stopped"] is True and stopped["terminated"] is True
    restart = page.evaluate("() => window.plotfarmClient.inits().at(-1)")
    assert restart["reason"] == "restart"

    run = run_local(page, example="scatter")
    assert run["error"] is None
    expect(page.locator("#local-plots .js-plotly-plot .gtitle")).to_have_text("Example scatter")
    how = "restored from the snapshot" if restart["restored"] else "started from scratch: the snapshot was not made yet"
    record(f"client page: a fresh interpreter after Stop was ready in {restart['initMs'] / 1000:.2f} s ({how})")


def test_without_the_editor_the_text_box_stays_and_the_page_works(new_page, e2e):
    """If CodeMirror cannot load (here: its files refused), the plain text box does the job: Tab, Ctrl+Enter."""
    page = new_page()
    page.route("**/editor/**", lambda route: route.abort())
    page.goto(f"{e2e.gateway_url}/client-plot")
    page.wait_for_function("() => window.plotfarmClient.editor() !== 'loading'", timeout=RUN)
    assert page.evaluate("() => window.plotfarmClient.editor()").startswith("failed")
    expect(page.locator("#editor")).to_be_hidden()
    expect(page.locator("#code")).to_be_visible()
    assert page.locator("#code").input_value().startswith("import plotly")  # the first example
    page.fill("#code", "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(y=[1]))\n")
    page.locator("#code").press("End")
    page.keyboard.press("Tab")
    assert page.locator("#code").input_value().endswith("\n    ")  # the text box's own indentation
    page.fill(
        "#code", "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).update_layout(title='plain').show()\n"
    )
    expect(page.locator("#engine")).to_have_attribute("data-state", "ready", timeout=BOOT)
    page.locator("#code").press("Control+Enter")
    expect(page.locator("#local-plots .js-plotly-plot .gtitle")).to_have_text("plain", timeout=RUN)
    assert page.errors == []


def test_repeat_visit_restores_the_interpreter_this_browser_saved(profile, e2e, first_visit):
    first_page, first, first_network, first_files, first_bytes = first_visit
    assert first["restored"] is False  # a first visit starts Python from scratch (and numpy/pandas are not fetched)
    # After its first boot the page makes its interpreter snapshot in the background and stores it.
    first_page.wait_for_function("() => window.plotfarmClient.snapshot() !== 'making'", timeout=BOOT)
    first_page.wait_for_function("() => ['saved', 'restored'].includes(window.plotfarmClient.snapshot())", timeout=BOOT)
    first_plotly_at_ms = first_page.evaluate("() => window.plotfarmClient.plotlyReadyAt()")
    page, repeat, repeat_network, repeat_files, repeat_bytes = visit(profile, e2e)
    try:
        assert repeat["restored"] is True, repeat
        assert page.evaluate("() => window.plotfarmClient.snapshot()") == "restored"
        run = run_local(page, example="scatter")
        assert run["error"] is None
        expect(page.locator("#local-plots .js-plotly-plot .gtitle")).to_have_text("Example scatter")
        # numpy and pandas were not in the snapshot: they load on demand as on a first visit.
        pandas_run = run_local(
            page,
            code="import pandas as pd\nimport plotly.express as px\npx.bar(pd.DataFrame({'a': [1, 2]}), y='a').show()",
        )
        assert pandas_run["error"] is None and "pandas" in pandas_run["packages"], pandas_run
        assert repeat_network == 0, "a repeat visit fetched files over the network"
        assert page.foreign_requests == [] and csp_violations(page) == []
        plotly_at_ms = page.evaluate("() => window.plotfarmClient.plotlyReadyAt()")
        # A repeat visit runs plotly.js once Python is ready, so the restore's "ready" never waits behind it.
        assert plotly_at_ms > repeat["initMs"], (plotly_at_ms, repeat["initMs"])
    finally:
        page.close()
    record(
        f"client page init (page load -> Python ready): first visit {first['initMs'] / 1000:.1f} s "
        f"({first_network} of {first_files} files, {first_bytes / 1e6:.1f} MB over the network; Pyodide "
        f"{first['pyodide_ms'] / 1000:.1f} s, packages {first['packages_ms'] / 1000:.1f} s, import plotly "
        f"{first['import_ms'] / 1000:.1f} s; plotly.js ready {first_plotly_at_ms / 1000:.1f} s after navigation); "
        f"repeat visit {repeat['initMs'] / 1000:.2f} s, restored from the "
        f"snapshot this browser saved ({repeat['snapshot_mb'] + repeat['files_mb']:.0f} MB read from the browser's OPFS in "
        f"{repeat['snapshot_read_ms'] / 1000:.2f} s, restored "
        f"{repeat['restore_ms'] / 1000:.2f} s, worker ready {repeat['total_ms'] / 1000:.2f} s; {repeat_network} of {repeat_files} "
        f"files over the network; plotly.js, run once Python was ready, ready {plotly_at_ms / 1000:.2f} s after navigation)"
    )
