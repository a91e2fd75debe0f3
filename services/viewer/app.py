"""The viewer's HTTP side: the live page, its static files, and the WebSocket.

``GET /[?job=ID]``    the live page (web/viewer/index.html); ``?job=`` opens one result
``GET /static/...``  the page's script and styles
``GET /ws[?since=N]``  WebSocket: a ``hello`` with the jobs to show, then one
                     ``job`` message per change, each with its stream offset
``GET /api/jobs/ID``  one job as the page shows it (for ``?job=`` links to a
                     result older than the history a page gets)
``GET /healthz``, ``/readyz``

Results are untrusted (user code chose their titles and text): the page
shows SVGs only as images and inserts text as text, and every response
carries a strict Content-Security-Policy (with Trusted Types, so even a
mistaken ``innerHTML`` in the page's own script would throw, not render).
"""

import asyncio
import contextlib

import structlog
from aiohttp import WSMsgType, web

from services.viewer.access import access_middleware, tenant_filter
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.broker import EventFollower
from shared.health import add_health_routes

log = structlog.get_logger(__name__)

LIVE = web.AppKey("live", LiveJobs)
ASSETS = web.AppKey("assets", AssetStore)
FOLLOWER = web.AppKey("follower", EventFollower)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
# A page (re)connecting while this viewer still replays the stream (it just
# restarted) waits for the replay, up to this long, so its ``since`` offset
# means the same thing here as where it came from.
CATCH_UP_WAIT_S = 20


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    return response


def _static(request: web.Request, path: str) -> web.Response:
    asset = request.app[ASSETS].get(f"viewer/{path}")
    if asset is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=asset.body, content_type=asset.content_type.split(";")[0], headers={"Cache-Control": "no-cache"}
    )


async def page(request: web.Request) -> web.Response:
    return _static(request, "index.html")


async def static(request: web.Request) -> web.Response:
    return _static(request, request.match_info["path"])


async def job(request: web.Request) -> web.Response:
    view = request.app[LIVE].view(request.match_info["job_id"], tenant_filter(request))
    if view is None:
        message = "no such job (unknown, not yet queued, or older than this viewer keeps)"
        return web.json_response({"error": message}, status=404)
    return web.json_response(view, headers={"Cache-Control": "no-store"})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    live = request.app[LIVE]
    since_raw = request.query.get("since")
    since = int(since_raw) if since_raw and since_raw.lstrip("-").isdigit() else None
    ws = web.WebSocketResponse(heartbeat=15, max_msg_size=64 * 1024)
    await ws.prepare(request)
    follower = request.app[FOLLOWER]
    if not follower.caught_up.is_set():
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(follower.caught_up.wait(), CATCH_UP_WAIT_S)
    # Subscribing and taking the catch-up happen with no await between them, so
    # every change lands either in the hello or in the outbox, never in neither.
    tenant = tenant_filter(request)
    outbox = live.subscribe(tenant)
    sender = None
    try:
        await ws.send_json(live.catch_up(since, tenant))

        async def send_changes() -> None:
            while (message := await outbox.get()) is not None:
                await ws.send_json(message)
            await ws.close(code=1013, message=b"too slow; reconnect")

        sender = asyncio.create_task(send_changes())
        async for message in ws:  # pages send nothing we need; this waits for close
            if message.type == WSMsgType.ERROR:
                break
    finally:
        live.unsubscribe(outbox)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
    return ws


def create_app(
    live: LiveJobs, follower: EventFollower, assets: AssetStore, keys: ApiKeys | None = None, require_key: bool = False
) -> web.Application:
    app = web.Application(middlewares=[security_headers, access_middleware(keys or ApiKeys([]), require_key)])
    app[LIVE], app[ASSETS], app[FOLLOWER] = live, assets, follower
    app.router.add_get("/", page)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/jobs/{job_id:[0-9a-f]{1,64}}", job)
    app.router.add_get("/static/{path:[A-Za-z0-9_.-]+}", static)
    add_health_routes(app, {"broker": follower.connected.is_set, "history": follower.caught_up.is_set})
    return app
