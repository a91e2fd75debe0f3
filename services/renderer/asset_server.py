"""The only server the renderer's Chromium can reach: plotfarm's own assets, read-only.

It runs beside Chromium, inside Chromium's network namespace when there is
one (see launcher.py), on loopback. Pages and workers load everything from
it, so a worker's start reads tens of megabytes at local speed. (Answering
from Playwright's request routing instead moves bodies through the DevTools
protocol at a few MB/s.)

Every response carries a strict Content-Security-Policy (workers take theirs
from their own script's response) and the cross-origin-isolation headers
that give workers the SharedArrayBuffer used to interrupt runaway code.
"""

import asyncio
import re
from pathlib import Path

from aiohttp import web

from shared.assets import AssetStore
from shared.web_security import LOCKED_DOWN, content_security_policy, security_headers

# Workers (the interpreters, where user code runs) take their policy from
# their own script's response: the strict one, no workers of their own.
CONTENT_SECURITY_POLICY = content_security_policy(
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data: blob:",
    "style-src 'self' 'unsafe-inline'",
    "font-src 'self' data:",
    *LOCKED_DOWN,
)
# The renderer page itself (no user code runs on it) also lets plotly.js's
# map library start the blob: Web Workers it draws tile maps with.
PAGE_POLICY = CONTENT_SECURITY_POLICY.replace("worker-src 'self'", "worker-src 'self' blob:")
HEADERS = {**security_headers(CONTENT_SECURITY_POLICY, cross_origin_isolated=True), "Cache-Control": "no-store"}
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": PAGE_POLICY}


STORED_SNAPSHOT_FILES = ("snapshot.json", "snapshot.bin")  # stored_snapshot.py


def make_app(assets: AssetStore, snapshots: Path | None = None) -> web.Application:
    """The app; with ``snapshots``, also the stored interpreter snapshots there (stored_snapshot.py)."""

    async def stored_snapshot(request: web.Request) -> web.StreamResponse:
        key, name = request.match_info["key"], request.match_info["name"]
        path = snapshots / key / name if snapshots and re.fullmatch(r"[0-9a-f]{12}", key) else None
        if path is None or name not in STORED_SNAPSHOT_FILES or not _file_inside(path, snapshots):
            raise web.HTTPNotFound(headers=HEADERS)
        # Streamed from disk (about 150 MB), never held in this process's memory.
        content_type = "application/json" if name.endswith(".json") else "application/octet-stream"
        return web.FileResponse(path, headers={**HEADERS, "Content-Type": content_type})

    async def answer(request: web.Request) -> web.Response:
        # The first request for a file reads it from disk: off the event loop.
        asset = await asyncio.to_thread(assets.get, request.match_info["path"])
        if asset is None:
            raise web.HTTPNotFound(headers=HEADERS)
        headers = PAGE_HEADERS if asset.content_type.startswith("text/html") else HEADERS
        return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})

    app = web.Application()
    app.router.add_get("/snapshots/{key}/{name}", stored_snapshot)
    app.router.add_get("/{path:.*}", answer)
    return app


def _file_inside(path: Path, root: Path) -> bool:
    """A regular file under ``root`` once resolved: a symlink out of it is not served."""
    resolved = path.resolve()
    return resolved.is_relative_to(root.resolve()) and resolved.is_file()
