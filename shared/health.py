"""Liveness and readiness endpoints, the same on every service.

``/healthz`` answers 200 while the process's event loop runs (liveness).
``/readyz`` answers 200 only when every named check passes (readiness), else
503 with the checks that failed, so a load balancer or compose healthcheck
sends no work to an instance that cannot do it yet. A service may add
``/stats`` (JSON numbers for operators and ``make bench``).
"""

from collections.abc import Awaitable, Callable

from aiohttp import web

from shared.service import serve

Checks = dict[str, Callable[[], bool]]


def add_health_routes(app: web.Application, checks: Checks) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        results = {name: bool(check()) for name, check in checks.items()}
        ready = all(results.values())
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def serve_health(
    host: str, port: int, checks: Checks, stats: Callable[[], Awaitable[dict]] | None = None
) -> web.AppRunner:
    """A stand-alone health server, for services with no HTTP interface of their own."""
    app = web.Application()
    add_health_routes(app, checks)
    if stats is not None:

        async def stats_route(_request: web.Request) -> web.Response:
            return web.json_response(await stats())

        app.router.add_get("/stats", stats_route)
    return await serve(app, host, port)
