"""The client-side page, served by the gateway.

``GET /client-plot``                 the page (web/client/index.html); never cached
``GET /assets/{build}/{path}``       what the page and its Web Worker load: our
                                     runtime and page scripts, Pyodide, plotly.js,
                                     the wheels, the code editor. ``build`` is a
                                     hash of the pinned versions and of our own
                                     files, so these URLs
                                     are cached for a year as ``immutable`` and a
                                     second visit loads nothing over the network;
                                     gzipped where it pays, from the first request
                                     on (compression.py)

The page runs the user's code in Pyodide in a Web Worker in the user's own
browser, with the same runtime (web/runtime/) the renderers use. Everything
comes from this server: no CDN, and a CSP that allows nothing else.

Every response here is cross-origin isolated (COOP + COEP), which gives the
page the SharedArrayBuffer the runtime interrupts runaway code with, and
carries the page's CSP: a module worker takes its CSP from its own script's
response, so the worker is held to the same rules as the page.
"""

import asyncio
import base64
import hashlib
import json
from pathlib import Path

import structlog
from aiohttp import web

from services.gateway.compression import CompressedAssets, compressible, gzipped
from shared.assets import AssetStore
from shared.page_contract import OutputLimits
from shared.settings import PROJECT_ROOT, Settings
from shared.vocabulary import FILE_NAME_PATTERN, MAX_FILE_NAME_BYTES
from shared.web_security import LOCKED_DOWN, content_security_policy, json_for_html, security_headers

log = structlog.get_logger(__name__)

# The least the page needs, found by running every example with a
# securitypolicyviolation listener (tests/e2e/test_client_page.py keeps it so):
# - its own scripts, and WebAssembly compilation for Pyodide ('wasm-unsafe-eval',
#   not 'unsafe-eval'); a same-origin worker; fetches to this server only;
# - images from blob: (the server's SVGs) and data: (plotly.js's own);
# - plotly.js's styles: it creates an empty <style> and fills it through the
#   CSSOM (allowed by the hash of the empty string), injects maplibre's CSS once
#   (its hash, for the pinned plotly.js-strict-dist-min), and sets style attributes
#   (d3's .attr("style")), which only 'unsafe-inline' for attributes allows;
#   inline <style> elements with any other content stay blocked;
# - the code editor (CodeMirror 6, ES modules with bare specifiers): one inline import map,
#   allowed by its hash (page_policy; Chrome has no external import maps), and the editor's
#   styles as constructed stylesheets of its shadow root, which no style-src governs;
# - Trusted Types, so every HTML-from-string sink throws; the page's one policy
#   ("default", in client.mjs) only lets same-origin URLs become worker scripts.
PLOTLY_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # "" (plotly.js-style-global, filled via insertRule)
    "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='",  # maplibre-gl's CSS in plotly.js-strict-dist-min 4.1.1
)
SCRIPT_SRC = "script-src 'self' 'wasm-unsafe-eval'"
CONTENT_SECURITY_POLICY = content_security_policy(
    "default-src 'none'",
    SCRIPT_SRC,
    "worker-src 'self'",
    "connect-src 'self'",
    "img-src 'self' blob: data:",
    "style-src 'self'",
    f"style-src-elem 'self' {' '.join(PLOTLY_STYLE_HASHES)}",
    "style-src-attr 'unsafe-inline'",
    *LOCKED_DOWN,
    "require-trusted-types-for 'script'",
    "trusted-types default",
)
COMMON_HEADERS = security_headers(CONTENT_SECURITY_POLICY, cross_origin_isolated=True)
# The page itself also lets plotly.js's map library start its blob: Web Workers
# (tile maps); the interpreter's worker script keeps the policy above. page_policy adds the
# hash of the page's import map.
PAGE_POLICY = CONTENT_SECURITY_POLICY.replace("worker-src 'self'", "worker-src 'self' blob:")
PAGE_HEADERS = {**COMMON_HEADERS, "Content-Security-Policy": PAGE_POLICY}


def page_policy(import_map: str) -> str:
    """The page's CSP with its one inline script, the import map, allowed by its sha256 (no other inline script runs)."""
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    return PAGE_POLICY.replace(SCRIPT_SRC, f"{SCRIPT_SRC} 'sha256-{digest}'", 1)


def import_map(asset_base: str, modules: dict[str, str]) -> str:
    """The page's import map: each editor package's bare specifier -> its file in this build."""
    return json_for_html({"imports": {name: asset_base + path for name, path in sorted(modules.items())}})


IMMUTABLE = "public, max-age=31536000, immutable"

# What the page may load under /assets/{build}/: whatever the AssetStore serves
# (it knows the runtime's needs), except the renderer's and the viewer's pages.
OTHER_PAGES = ("renderer", "viewer")
# Our own files, hashed into the build id (the pinned ones are covered by AssetStore.version).
OWN_DIRS = ("runtime", "client")

EXAMPLES_DIR = PROJECT_ROOT / "examples"
# The README's scatter and bar, then the rest; (file, label).
EXAMPLES = (
    ("scatter.py", "Scatter"),
    ("bar.py", "Bar chart"),
    ("pie.py", "Pie"),
    ("heatmap.py", "Heatmap"),
    ("subplots.py", "Subplots"),
    ("two_figures.py", "Two figures"),
    ("px_iris.py", "plotly.express (iris)"),
    ("pandas_timeseries.py", "pandas time series"),
    ("numpy_surface.py", "numpy contour"),
)
FALLBACK_EXAMPLE = (
    "import plotly.graph_objects as go\n\n"
    'fig = go.Figure(data=go.Scatter(x=[1, 2, 3, 4], y=[10, 11, 12, 13], mode="lines+markers"))\n'
    'fig.update_layout(title="Example scatter")\nfig.show()\n'
)


def load_examples(directory: Path = EXAMPLES_DIR) -> list[dict]:
    examples = []
    for name, label in EXAMPLES:
        path = directory / name
        if path.is_file():
            examples.append({"id": path.stem, "label": label, "code": path.read_text(encoding="utf-8")})
    return examples or [{"id": "scatter", "label": "Scatter", "code": FALLBACK_EXAMPLE}]


class ClientPages:
    def __init__(self, settings: Settings, assets: AssetStore):
        self.settings = settings
        self.assets = assets
        self._build: str | None = None
        self._page: bytes | None = None
        self._policy = PAGE_POLICY
        self.compressed = CompressedAssets(settings.compressed_assets_dir)
        self._gzipped: dict[str, bytes] = {}  # NOT_WORTH_IT: send it plain
        self._compressing: dict[str, asyncio.Task] = {}

    @property
    def build(self) -> str:
        """Computed on first use: the files are read once, and unit tests without assets never get here."""
        if self._build is None:
            hasher = hashlib.sha256(self.assets.digest(*OWN_DIRS).encode())
            # The editor's pinned packages (not in the runtime's manifest: only this page loads them).
            editor_versions = getattr(self.assets, "editor_versions", dict)()
            hasher.update(json.dumps(editor_versions, sort_keys=True).encode())
            # Files `make assets` generates keep their names from build to build: hash their bytes.
            generated = getattr(self.assets, "precompiled_dir", None)
            for file in sorted(generated.glob("*")) if generated and generated.is_dir() else []:
                if file.is_file():
                    hasher.update(file.name.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
            self._build = hasher.hexdigest()[:12]
        return self._build

    @property
    def asset_base(self) -> str:
        return f"/assets/{self.build}/"

    def render_page(self) -> bytes:
        if self._page is None:
            template = self.assets.get("client/index.html")
            if template is None:
                raise web.HTTPNotFound(text="the client page is missing (web/client/index.html)")
            settings = self.settings
            config = {
                "assetBase": self.asset_base,
                "viewerUrl": settings.public_viewer_url,
                "examples": load_examples(),
                "timeoutMs": int(settings.max_timeout_s * 1000),
                "graceMs": int(settings.interrupt_grace_s * 1000),
                "limits": OutputLimits.from_settings(settings).model_dump(),
                "serverWaitS": min(30, settings.max_wait_s),
                # What POST /api/jobs accepts as input files: the page refuses more before sending
                # (and before a local run, so both runs see the same files).
                "inputs": {
                    "maxBytes": settings.max_input_bytes,
                    "maxFiles": settings.max_input_files,
                    "namePattern": FILE_NAME_PATTERN,
                    "maxNameBytes": MAX_FILE_NAME_BYTES,
                },
            }
            modules = import_map(self.asset_base, self.assets.editor_modules)
            html = template.body.decode()
            html = (
                html.replace("{{assets}}", self.asset_base)
                .replace("{{importmap}}", modules)
                .replace("{{config}}", json_for_html(config))  # last: the examples' code stays as written
            )
            self._policy = page_policy(modules)
            self._page = html.encode()
        return self._page

    async def page(self, _request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.render_page)  # the first call hashes the assets
        return web.Response(
            body=body,
            content_type="text/html",
            charset="utf-8",
            headers={**PAGE_HEADERS, "Content-Security-Policy": self._policy, "Cache-Control": "no-cache"},
        )

    async def current_build(self) -> str:
        """:attr:`build`, computed off the event loop the first time (it reads and hashes our files)."""
        return self._build or await asyncio.to_thread(lambda: self.build)

    async def asset(self, request: web.Request) -> web.Response:
        # The build first: an old build's URL (a page loaded before a deploy) is not served new
        # bytes to cache forever, and costs no file read. Then one spelling per file, so
        # `plotly//plotly.min.js` is neither read nor gzipped apart from `plotly/plotly.min.js`.
        path = self.assets.canonical(request.match_info["path"])
        if (
            request.match_info["build"] != await self.current_build()
            or path is None
            or path.split("/")[0] in OTHER_PAGES
        ):
            return self._not_found()
        asset = await asyncio.to_thread(self.assets.get, path)
        if asset is None:
            return self._not_found()
        headers = {**COMMON_HEADERS, "Cache-Control": IMMUTABLE, "Content-Type": asset.content_type}
        body = asset.body
        if compressible(asset):
            headers["Vary"] = "Accept-Encoding"
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                compressed = await self._gzip(path, body)
                if compressed:
                    body = compressed
                    headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    @staticmethod
    def _not_found() -> web.Response:
        return web.json_response(
            {"error": "not found: not a file of this build"},
            status=404,
            headers={**COMMON_HEADERS, "Cache-Control": "no-store"},
        )

    async def _gzip(self, path: str, body: bytes) -> bytes | None:
        """The gzip made for this build (compression.py); None while it is being made (this answer goes plain)."""
        if path not in self._gzipped and path not in self._compressing:
            stored = await asyncio.to_thread(self.compressed.load, self.build, path)
            if stored is not None:
                self._gzipped[path] = stored
            elif path not in self._compressing:  # another request may have started it meanwhile
                task = asyncio.create_task(asyncio.to_thread(self._make_gzip, path, body))
                self._compressing[path] = task
                task.add_done_callback(lambda done: self._compressed(path, done))
        return self._gzipped.get(path)

    def _make_gzip(self, path: str, body: bytes) -> bytes:
        compressed = gzipped(body)
        self.compressed.save(self.build, path, compressed)
        return compressed

    def _compressed(self, path: str, task: asyncio.Task) -> None:
        self._compressing.pop(path, None)
        if not task.cancelled() and task.exception() is None:
            self._gzipped[path] = task.result()
        else:
            log.warning(
                "asset compression failed",
                path=path,
                error=repr(task.exception()) if not task.cancelled() else "cancelled",
            )


def add_page_routes(app: web.Application, settings: Settings, assets: AssetStore) -> None:
    pages = ClientPages(settings, assets)
    app.router.add_get("/client-plot", pages.page)
    app.router.add_get(r"/assets/{build:[0-9a-f]{12}}/{path:[A-Za-z0-9_./-]+}", pages.asset)
