"""The asset server gives out what it serves and nothing else.

It is the one server Chromium can reach (inside Chromium's network
namespace), so a page, a job, or a compromised renderer process can send it
any request. Two views:

1. **Straight at a real asset server process** (``make_app`` over
   ``AssetStore``, as the launcher runs it), over a raw socket so no client
   tidies the request first: path traversal (plain, percent-encoded, doubly
   encoded, backslashes, NUL, absolute-form), symlinks out of a served
   directory, unlisted files next to listed ones (npm packages' other files,
   build stamps, a package the lock does not name), the project's own source.
   It serves a copy of the real layout in a temporary directory with canary
   files planted inside and beside it; no answer may carry a canary, and
   the controls (files it does serve) must come back, so the layout is right.
2. **From a job on the real renderer**: the one way job code can make the
   page fetch from the asset server is a figure's layout image (plotly.js
   loads it on the page and embeds it in the SVG as a ``data:`` PNG). A
   served image comes back embedded (the control); project files outside
   the served set (``docs/*.png``), however the URL is spelled, never do.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT, free_port

pytestmark = pytest.mark.sandbox

REAL_WEB = ROOT / "web"
REAL_BUILD = ROOT / "build"
TOKEN = uuid.uuid4().hex
CANARIES = {
    "outside": f"CANARY-OUTSIDE-{TOKEN}",
    "web_root": f"CANARY-WEB-ROOT-{TOKEN}",
    "build_root": f"CANARY-BUILD-ROOT-{TOKEN}",
    "precompiled": f"CANARY-PRECOMPILED-{TOKEN}",
    "packages": f"CANARY-PACKAGES-{TOKEN}",
    "snapshots": f"CANARY-SNAPSHOTS-{TOKEN}",
}
SNAPSHOT_KEY = "0123456789ab"  # a stored snapshot (services/renderer/stored_snapshot.py)
SERVER = """
import sys
from aiohttp import web
from services.renderer.asset_server import make_app
from shared.assets import AssetStore
from shared.settings import get_settings
settings = get_settings()
web.run_app(make_app(AssetStore(settings), settings.snapshot_store_dir), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def link_each(source: Path, target: Path) -> None:
    """``target``: a real directory whose entries are symlinks to ``source``'s."""
    target.mkdir(parents=True)
    for entry in source.iterdir():
        (target / entry.name).symlink_to(entry)


def layout(tmp: Path) -> Path:
    """A copy of the served layout (symlinks to the real files) with canaries planted around it."""
    (tmp / "secret.txt").write_text(CANARIES["outside"])
    web = tmp / "web"
    web.mkdir()
    (web / "canary.txt").write_text(CANARIES["web_root"])
    (web / "node_modules").symlink_to(REAL_WEB / "node_modules")
    for head in ("runtime", "renderer", "viewer"):
        (web / head).symlink_to(REAL_WEB / head)
    shutil.copytree(REAL_WEB / "client", web / "client")  # a real directory (a copy): room for traps
    (web / "client" / "escape.txt").symlink_to(tmp / "secret.txt")
    (web / "client" / "escape-dir").symlink_to(tmp)
    (web / "client" / "project").symlink_to(ROOT)
    build = tmp / "build"
    build.mkdir()
    (build / "canary.txt").write_text(CANARIES["build_root"])
    (build / "wheels").symlink_to(REAL_BUILD / "wheels")
    link_each(REAL_BUILD / "precompiled", build / "precompiled")
    (build / "precompiled" / "canary.bin").write_text(CANARIES["precompiled"])
    link_each(REAL_BUILD / "pyodide-packages", build / "pyodide-packages")
    (build / "pyodide-packages" / "canary-1.0-py3-none-any.whl").write_text(CANARIES["packages"])
    stored = tmp / "snapshots" / SNAPSHOT_KEY
    stored.mkdir(parents=True)
    (stored / "snapshot.json").write_text("{}")
    (stored / "snapshot.bin").write_bytes(b"\0" * 1000)
    (stored / "canary.txt").write_text(CANARIES["snapshots"])
    (tmp / "snapshots" / "canary.txt").write_text(CANARIES["snapshots"])
    (stored.parent / "ABCDEF012345").symlink_to(stored)  # not a key this server would make
    (stored / "escape.bin").symlink_to(tmp / "secret.txt")
    (stored.parent / "bbbbbbbbbbbb").mkdir()
    (stored.parent / "bbbbbbbbbbbb" / "snapshot.json").symlink_to(tmp / "secret.txt")
    return tmp


@pytest.fixture(scope="module")
def asset_server(tmp_path_factory):
    tree = layout(tmp_path_factory.mktemp("assets"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PLOTFARM_WEB_DIR": str(tree / "web"),
        "PLOTFARM_WHEELS_DIR": str(tree / "build" / "wheels"),
        "PLOTFARM_SNAPSHOT_STORE_DIR": str(tree / "snapshots"),
    }
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the asset server did not start"
            time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(10)


def raw_get(port: int, target: str, method: str = "GET") -> tuple[int, bytes]:
    """One request exactly as written (no client normalises it); the status and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


SERVED = [  # controls: the layout is right and the server answers
    "/manifest.json",
    "/runtime/interpreter.mjs",
    "/viewer/favicon.svg",
    "/client/index.html",
    "/pyodide/pyodide.mjs",
    "/pyodide/pyodide-lock.json",
    "/precompiled/base.json",
    f"/snapshots/{SNAPSHOT_KEY}/snapshot.json",
    f"/snapshots/{SNAPSHOT_KEY}/snapshot.bin",
]

REFUSED = [
    # traversal to the host's files, every spelling
    "/../../../../../../etc/passwd",
    "/runtime/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/runtime/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/runtime/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/runtime/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/runtime/%252e%252e/%252e%252e/%252e%252e/etc/passwd",
    "/runtime/..%5c..%5c..%5c..%5cetc%5cpasswd",
    "/runtime/..\\..\\..\\..\\etc\\passwd",
    "//etc/passwd",
    "/runtime//etc/passwd",
    "/runtime/%00/../../../etc/passwd",
    "/mathjax/../../../../../../etc/passwd",
    "/mathjax/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/topojson/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "http://127.0.0.1/../../../../etc/passwd",
    "/proc/self/environ",
    "/runtime/..%2f..%2f..%2f..%2f..%2f..%2fproc%2fself%2fenviron",
    # the canaries planted in and around the served layout
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/canary.txt",
    "/runtime/..%2fcanary.txt",
    "/runtime/../canary.txt",
    "/client/..%2f..%2fsecret.txt",
    "/client/escape.txt",
    "/client/escape-dir/secret.txt",
    "/client/escape-dir/web/canary.txt",
    "/precompiled/canary.bin",
    "/precompiled/..%2fcanary.txt",
    "/wheels/..%2fcanary.txt",
    "/wheels/../canary.txt",
    "/pyodide/canary-1.0-py3-none-any.whl",
    "/pyodide/..%2f..%2fcanary.txt",
    f"/snapshots/{SNAPSHOT_KEY}/canary.txt",
    f"/snapshots/{SNAPSHOT_KEY}/escape.bin",
    f"/snapshots/{SNAPSHOT_KEY}/..%2fcanary.txt",
    f"/snapshots/{SNAPSHOT_KEY}/../canary.txt",
    f"/snapshots/{SNAPSHOT_KEY}/..%2f..%2fsecret.txt",
    "/snapshots/ABCDEF012345/snapshot.json",
    "/snapshots/bbbbbbbbbbbb/snapshot.json",
    "/snapshots/..%2f..%2fsecret.txt/snapshot.json",
    "/snapshots/canary.txt",
    f"/snapshots/{SNAPSHOT_KEY}/",
    f"/snapshots/{SNAPSHOT_KEY}/snapshot.json/..%2f..%2fcanary.txt",
    # build/ and node_modules/ files that are there but not listed
    "/precompiled/.installed",
    "/pyodide/.installed",
    "/pyodide/plotfarm-packages.json",
    "/wheels/.installed",
    "/pyodide/package.json",
    "/pyodide/pyodide.d.ts",
    "/plotly/package.json",
    "/node_modules/pyodide/pyodide.mjs",
    "/mathjax/../package.json",
    "/topojson/../package.json",
    # the project's own source, configuration and environment
    "/client/project/shared/settings.py",
    "/client/project/README.md",
    "/runtime/..%2f..%2fshared%2fsettings.py",
    "/runtime/..%2f..%2fservices%2frenderer%2flauncher.py",
    "/renderer/..%2f..%2f.venv%2fpyvenv.cfg",
    "/shared/settings.py",
    "/services/renderer/launcher.py",
    "/Makefile",
    "/.git/config",
    "/.venv/pyvenv.cfg",
    "/build/wheels/",
    "/runtime/",
    "/runtime",
    "/",
]


@pytest.mark.parametrize("target", SERVED)
def test_the_asset_server_serves_what_it_lists(asset_server, target):
    status, body = raw_get(asset_server, target)
    assert status == 200 and body, f"{target}: {status}"


@pytest.mark.parametrize("target", REFUSED)
def test_the_asset_server_gives_out_nothing_else(asset_server, target):
    status, body = raw_get(asset_server, target)
    text = body.decode(errors="replace")
    assert status in (400, 404), f"{target}: {status}: {text[:200]}"
    assert TOKEN not in text, f"{target} leaked a canary"
    for marker in ("root:x:0:0", "PLOTFARM_", "amqp://", "class Settings", "def main", "[core]", "home = "):
        assert marker not in text, f"{target} leaked {marker!r}"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PROPFIND"])
def test_the_asset_server_only_reads(asset_server, method):
    status, _ = raw_get(asset_server, "/manifest.json", method)
    assert status in (404, 405), f"{method}: {status}"


# ---- from a job --------------------------------------------------------------------

# A layout image the renderer keeps and plotly.js draws: the probe works.
CONTROL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
FORBIDDEN = [  # a file the asset server serves, and real images in the project outside what it serves
    "/viewer/favicon.svg",
    "/docs/viewer.png",
    "/viewer/../../docs/viewer.png",
    "/viewer/%2e%2e/%2e%2e/docs/viewer.png",
    "/viewer/..%2f..%2fdocs%2fviewer.png",
    "/viewer/%2e%2e%2f%2e%2e%2fdocs%2fclient-plot.png",
    "/client/..%5c..%5cdocs%5cviewer.png",
    "/pyodide/..%2f..%2f..%2fdocs%2fviewer.png",
    "/mathjax/..%2f..%2f..%2f..%2f..%2fdocs%2fviewer.png",
    "/topojson/..%2f..%2f..%2f..%2f..%2fdocs%2fviewer.png",
    "/../../../../../usr/share/pixmaps/debian-logo.png",
    "file:///work/main/docs/viewer.png",
]
JOB = """
import js
import plotly.graph_objects as go
origin = str(js.location.origin)
print('origin', origin)
for i, path in enumerate({paths!r}):
    url = path if ':' in path else origin + path
    fig = go.Figure(go.Scatter(y=[1, 2]))
    fig.add_layout_image(source=url, x=0, y=1, sizex=1, sizey=1, xref='paper', yref='paper')
    fig.update_layout(title=f'probe {{i}}')
    fig.show()
"""


@pytest.mark.integration
async def test_a_job_gets_only_served_files_from_the_asset_server(sandbox_api, canary):
    hits = len(canary.hits)
    paths = [CONTROL, *FORBIDDEN]
    result = await sandbox_api.render(JOB.format(paths=paths), timeout=120, timeout_s=30)
    assert result["status"] == "done", result.get("error")
    assert "origin http://127.0.0.1:" in result["stdout"], result["stdout"]
    svgs = [figure["svg"] for figure in result["figures"]]
    assert len(svgs) == len(paths)
    # plotly.js embeds an image it could load as a data: PNG; the sanitiser keeps only data: images.
    assert "data:image/png" in svgs[0], "the control image (a data: PNG) was not embedded: the probe is broken"
    # Any other source is a URL, which the renderer leaves out of the figure (web/runtime/fidelity.mjs):
    # the page is never asked to fetch it, not even from the asset server, and the result says so.
    for path, svg in zip(paths[1:], svgs[1:], strict=True):
        assert "data:image" not in svg, f"{path} was fetched and embedded"
        assert "viewer.png" not in svg and "client-plot.png" not in svg and "file:" not in svg
    left_out = [warning for warning in result["warnings"] if "layout image" in warning and "left out" in warning]
    assert len(left_out) == len(paths) - 1, result["warnings"]
    assert len(canary.hits) == hits


def test_docs_images_exist_so_the_job_probe_means_something():
    assert (ROOT / "docs" / "viewer.png").is_file() and (ROOT / "docs" / "client-plot.png").is_file()
