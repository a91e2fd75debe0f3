"""The viewer's HTTP side: the live page, its static files, and the WebSocket.

``GET /[?job=ID]``    the live page (web/viewer/index.html); ``?job=`` opens one result
``GET /static/...``  the page's script and styles
``GET /ws[?since=N]``  WebSocket: a ``hello`` with the jobs to show, then one
                     ``job`` message per change, each with its stream offset
``GET /api/jobs/ID``  one job as the page shows it (for ``?job=`` links to a
                     result older than the history a page gets)
``GET /api/jobs/ID/figures/N.{svg,png,jpeg,webp,pdf}``  one figure's file, as the gateway serves it
                     (shared/figure_files.py): the page's PNG downloads, and SVGs too
                     large for its WebSocket messages
``GET /healthz``, ``/readyz``
``GET /metrics``     Prometheus metrics (shared/metrics.py): WebSocket clients, the events follower

Results are untrusted (user code chose their titles and text): the page
shows SVGs only as images and inserts text as text, and every response
carries a strict Content-Security-Policy (with Trusted Types, so even a
mistaken ``innerHTML`` in the page's own script would throw, not render).
"""

import asyncio
import contextlib

import structlog
from aiohttp import WSMsgType, web

from services.viewer.access import AllowedOrigins, access_middleware, key_required, tenant_filter
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.events import EventFollower
from shared.figure_files import FigureFiles
from shared.health import add_health_routes, when
from shared.http_errors import error_response, handle_unexpected_errors, json_http_errors, unexpected_errors
from shared.http_input import bounded_int
from shared.metrics import ViewerMetrics
from shared.proxies import TrustedProxies, forwarded_middleware
from shared.settings import Settings
from shared.vocabulary import BINARY_FORMATS, FORMAT_BY_EXTENSION, Format
from shared.web_security import LOCKED_DOWN, content_security_policy, security_headers

log = structlog.get_logger(__name__)

LIVE = web.AppKey("live", LiveJobs)
ASSETS = web.AppKey("assets", AssetStore)
FILES = web.AppKey("files", FigureFiles)
FOLLOWER = web.AppKey("follower", EventFollower)
METRICS = web.AppKey("metrics", ViewerMetrics)

SETTINGS = web.AppKey("settings", Settings)
ORIGINS = web.AppKey("origins", AllowedOrigins)
# Stream offsets: -1 (a page that saw an empty stream) up to RabbitMQ's int64.
LARGEST_OFFSET = 2**63 - 1
# More figures than any job may have (PLOTFARM_MAX_FIGURES is far below): a bound before the lookup.
LARGEST_FIGURE_INDEX = 10_000

CONTENT_SECURITY_POLICY = content_security_policy(
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    "connect-src 'self'",
    *LOCKED_DOWN,
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
)
HEADERS = security_headers(CONTENT_SECURITY_POLICY, cross_origin_isolated=False)


@web.middleware
async def add_security_headers(request: web.Request, handler):
    response = await handler(request)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# What the page imports from the shared runtime (the job's words, shared/vocabulary.py), beside its own files.
RUNTIME_MODULES = ("vocabulary.mjs",)


async def _static(request: web.Request, path: str) -> web.Response:
    # The first request for a file reads it from disk: off the event loop.
    folder = "runtime" if path in RUNTIME_MODULES else "viewer"
    asset = await asyncio.to_thread(request.app[ASSETS].get, f"{folder}/{path}")
    if asset is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=asset.body, content_type=asset.content_type.split(";")[0], headers={"Cache-Control": "no-cache"}
    )


async def page(request: web.Request) -> web.Response:
    return await _static(request, "index.html")


async def static(request: web.Request) -> web.Response:
    return await _static(request, request.match_info["path"])


async def job(request: web.Request) -> web.Response:
    view = request.app[LIVE].view(request.match_info["job_id"], tenant_filter(request))
    if view is None:
        message = "no such job (unknown, not yet queued, or older than this viewer keeps)"
        return web.json_response({"error": message}, status=404)
    return web.json_response(view, headers={"Cache-Control": "no-store"})


def _figure(request: web.Request):
    """The figure a ``/api/jobs/{job_id}/figures/{index}.*`` request names, if the caller may see it."""
    job_id, index = request.match_info["job_id"], bounded_int(request.match_info["index"], 0, LARGEST_FIGURE_INDEX)
    record = request.app[LIVE].record(job_id, tenant_filter(request))
    figures = record.result.figures if record is not None and record.result is not None else []
    return figures[index] if index is not None and index < len(figures) else None


def figure_number(request: web.Request) -> int:
    """The figure index of a request :func:`_figure` answered (so it is a number in range)."""
    return bounded_int(request.match_info["index"], 0, LARGEST_FIGURE_INDEX)


# The files the viewer serves: the SVG, and each binary format (images and the PDF: never pushed
# over the WebSocket), by extension (.jpg is a JPEG too).
VIEWER_EXTENSIONS = {ext: fmt for ext, fmt in FORMAT_BY_EXTENSION.items() if fmt == Format.SVG or fmt in BINARY_FORMATS}


def no_such_file(fmt: str) -> str:
    """The 404's sentence: an SVG is missing when the job or figure is; any other file only exists when asked for."""
    if fmt == Format.SVG:
        return "no such SVG (unknown job or figure)"
    return f"no such {fmt.upper()} (unknown job, or it asked for no {fmt.upper()})"


async def figure_file(request: web.Request) -> web.Response:
    """A figure's image or PDF (the page's download links: they are not pushed over the WebSocket) or
    SVG (for figures too large to travel inside WebSocket messages: live.py); never cached."""
    fmt = VIEWER_EXTENSIONS[request.match_info["format"]]
    figure = _figure(request)
    if figure is None or getattr(figure, fmt) is None:
        return web.json_response({"error": no_such_file(fmt)}, status=404)
    name = f"{request.match_info['job_id']}-{figure_number(request)}"
    files = request.app[FILES]
    download = fmt != Format.SVG
    return await asyncio.to_thread(files.response, figure, fmt, name, download=download, cache_control="no-store")


async def websocket(request: web.Request) -> web.StreamResponse:
    if not request.app[ORIGINS].allows(request):
        # Another site's page: a WebSocket is not bound by the same-origin policy, so it is refused here.
        return error_response(403, "this WebSocket is only for the viewer's own pages: Origin not allowed")
    since_raw = request.query.get("since")
    since = bounded_int(since_raw, -1, LARGEST_OFFSET)
    if since_raw is not None and since is None:
        return error_response(400, f"since must be a stream offset: an integer from -1 to {LARGEST_OFFSET}")
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(heartbeat=settings.websocket_heartbeat_s, max_msg_size=64 * 1024)
    await ws.prepare(request)
    with request.app[METRICS].websocket_clients.track_inprogress():
        return await _serve_page(request, ws, since)


async def _serve_page(request: web.Request, ws: web.WebSocketResponse, since: int | None) -> web.WebSocketResponse:
    """One open WebSocket: the hello, then every change, until the page goes."""
    live, settings = request.app[LIVE], request.app[SETTINGS]
    follower = request.app[FOLLOWER]
    if not follower.caught_up.is_set():
        # A page (re)connecting while this viewer still replays the stream (it just
        # restarted) waits for the replay, so its ``since`` means the same here as where it came from.
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(follower.caught_up.wait(), settings.viewer_catch_up_wait_s)
    # Subscribing and taking the catch-up happen with no await between them, so
    # every change lands either in the hello or in the outbox, never in neither.
    tenant = tenant_filter(request)
    outbox = live.subscribe(tenant)
    sender = None
    try:
        await ws.send_json(live.catch_up(since, tenant))

        async def send_changes() -> None:
            while (message := await outbox.get()) is not None:
                await ws.send_str(message)  # serialised once for every page (LiveJobs.apply)
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
    settings: Settings,
    live: LiveJobs,
    follower: EventFollower,
    assets: AssetStore,
    keys: ApiKeys | None = None,
    metrics: ViewerMetrics | None = None,
) -> web.Application:
    keys = keys or ApiKeys([])
    access = access_middleware(keys, key_required(settings, keys))
    proxies = forwarded_middleware(TrustedProxies(settings.trusted_proxies))  # first: the rest sees the client
    app = web.Application(middlewares=[proxies, add_security_headers, unexpected_errors, json_http_errors, access])
    handle_unexpected_errors(app)
    app[SETTINGS], app[LIVE], app[ASSETS], app[FOLLOWER] = settings, live, assets, follower
    app[ORIGINS] = AllowedOrigins(settings)
    app[FILES] = FigureFiles(assets)
    app[METRICS] = metrics = metrics or ViewerMetrics()
    metrics.watch_follower(follower)
    app.router.add_get("/", page)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/jobs/{job_id:[0-9a-f]{1,64}}", job)
    extensions = "|".join(sorted(VIEWER_EXTENSIONS, key=lambda ext: (-len(ext), ext)))
    app.router.add_get(
        rf"/api/jobs/{{job_id:[0-9a-f]{{1,64}}}}/figures/{{index:\d+}}.{{format:{extensions}}}", figure_file
    )
    app.router.add_get("/static/{path:[A-Za-z0-9_.-]+}", static)
    add_health_routes(
        app,
        {
            "events": follower.not_ready_because,
            "history": when(follower.caught_up.is_set, "still reading the events stream's history"),
        },
    )
    metrics.add_route(app)
    return app
