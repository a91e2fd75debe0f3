"""Who may see which jobs in the viewer (``PLOTFARM_VIEWER_REQUIRE_KEY``), and which pages may connect.

Whenever API keys are configured (the default ``auto``), the viewer asks for a
key like the API does and shows each key only its tenant's jobs: a viewer
that showed every job would undo the gateway's tenants. A browser cannot put
a header on a page load or a WebSocket, so the first visit carries the key
once as ``/?key=…``: the viewer moves it into an HttpOnly, SameSite=Strict
cookie (``Secure`` when the request came over TLS, a trusted proxy's
included: shared/proxies.py), out of the address bar, history and logs, and
redirects to ``/`` on this server, never to a path the request chose (``//evil.example``
would be another site). Every later request, the WebSocket included, is
authenticated by that cookie. ``false`` opens the viewer to every job, an
operator's own view, and says so in a warning at start.

The WebSocket also checks ``Origin``, which browsers always send on one: only
the viewer's own origin (the request's scheme and Host), that of
``PLOTFARM_PUBLIC_VIEWER_URL`` and ``PLOTFARM_VIEWER_ALLOWED_ORIGINS`` may
connect; any other page gets 403 before the upgrade. A request with no
``Origin`` is not from a browser page (a script, a monitor): it is let through,
and the key rules above apply to it as to any request.
"""

from urllib.parse import urlencode

import structlog
from aiohttp import web
from yarl import URL

from shared.auth import ApiKeys, presented_key
from shared.settings import Settings

log = structlog.get_logger(__name__)

KEY_COOKIE = "plotfarm_key"
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")
# The tenant whose jobs this request may see; absent means every job.
TENANT = web.RequestKey("tenant", str)
DEFAULT_PORTS = {"http": 80, "https": 443}

NEEDS_KEY_PAGE = """<!doctype html><meta charset="utf-8"><title>plotfarm viewer</title>
<p>This viewer shows jobs to their owners only. Open it with your API key once:
<code>/?key=YOUR_KEY</code> (it is then kept in a cookie, not in the address).</p>"""


def tenant_filter(request: web.Request) -> str | None:
    return request.get(TENANT)


def key_required(settings: Settings, keys: ApiKeys) -> bool:
    """Whether the viewer asks for a key; logs a warning when its setting leaves it open although keys are set,
    or asks for keys where there are none."""
    if not keys.enabled:
        if settings.viewer_require_key is True:
            log.warning("PLOTFARM_VIEWER_REQUIRE_KEY is true but no API keys are configured: the viewer is open")
        return False
    if settings.viewer_require_key is False:
        log.warning(
            "PLOTFARM_VIEWER_REQUIRE_KEY=false: the viewer shows every tenant's jobs to anyone who reaches it, "
            "although API keys are configured"
        )
        return False
    return True


def access_middleware(keys: ApiKeys, required: bool):
    @web.middleware
    async def viewer_access(request: web.Request, handler):
        if not (required and keys.enabled) or request.path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        key = request.query.get("key") or request.cookies.get(KEY_COOKIE) or presented_key(request.headers)
        tenant = keys.tenant_for(key)
        if tenant is None:
            if request.path == "/":
                return web.Response(status=401, text=NEEDS_KEY_PAGE, content_type="text/html")
            return web.json_response({"error": "a valid API key is required"}, status=401)
        if "key" in request.query:
            # Always to the page at "/" on this server: a path taken from the request could be
            # "//evil.example" or "/\evil.example", which browsers follow to another site.
            rest = [(name, value) for name, value in request.query.items() if name != "key"]
            response = web.Response(status=303, headers={"Location": "/" + (f"?{urlencode(rest)}" if rest else "")})
            response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="Strict", secure=request.secure, path="/")
            return response
        request[TENANT] = tenant
        return await handler(request)

    return viewer_access


def origin_key(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin such as ``https://viewer.example.com``; None if it is not one."""
    try:
        url = URL(origin)
        port = url.port
    except ValueError:
        return None
    scheme = url.scheme.lower()
    if scheme not in DEFAULT_PORTS or not url.host or url.path not in ("", "/") or url.query_string or url.fragment:
        return None
    if url.user is not None or url.password is not None:
        return None
    return scheme, url.host.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


class AllowedOrigins:
    """The origins whose pages may open the viewer's WebSocket (see the module)."""

    def __init__(self, settings: Settings):
        configured = [settings.public_viewer_url, *settings.viewer_allowed_origins.split(",")]
        self.origins = {key for key in map(origin_key, filter(None, map(str.strip, configured))) if key}

    def allows(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser page; the key rules still apply
        claimed = origin_key(origin)
        if claimed is None:
            return False
        return claimed in self.origins or claimed == origin_key(f"{request.scheme}://{request.host}")
