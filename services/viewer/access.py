"""Restricting the viewer to one tenant's jobs (``PLOTFARM_VIEWER_REQUIRE_KEY``).

With API keys configured and the setting on, the viewer asks for a key like
the API does. A browser cannot put a header on a page load or a WebSocket,
so the first visit carries it once as ``/?key=…``: the viewer moves it into
an HttpOnly, SameSite=Strict cookie (out of the address bar, history and
logs) and redirects. Every later request, the WebSocket included, is
authenticated by that cookie, and sees only the key's tenant's jobs.
Otherwise (the default) the viewer is the operator's view of every job.
"""

from urllib.parse import urlencode

from aiohttp import web

from shared.auth import ApiKeys, presented_key

KEY_COOKIE = "plotfarm_key"
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")
# The tenant whose jobs this request may see; absent means every job.
TENANT = web.RequestKey("tenant", str)

NEEDS_KEY_PAGE = """<!doctype html><meta charset="utf-8"><title>plotfarm viewer</title>
<p>This viewer shows jobs to their owners only. Open it with your API key once:
<code>/?key=YOUR_KEY</code> (it is then kept in a cookie, not in the address).</p>"""


def tenant_filter(request: web.Request) -> str | None:
    return request.get(TENANT)


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
            rest = [(name, value) for name, value in request.query.items() if name != "key"]
            response = web.Response(
                status=303, headers={"Location": request.path + (f"?{urlencode(rest)}" if rest else "")}
            )
            response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="Strict", secure=request.secure, path="/")
            return response
        request[TENANT] = tenant
        return await handler(request)

    return viewer_access
