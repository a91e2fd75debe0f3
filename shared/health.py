"""Liveness and readiness endpoints, the same on every service.

``/healthz`` answers 200 while the process's event loop runs (liveness).
``/readyz`` answers 200 only when every named check passes (readiness), else
503, so a load balancer or compose healthcheck sends no work to an instance
that cannot do it yet; each check says why it fails::

    {"ready": false, "checks": {"broker": "PRECONDITION_FAILED - inequivalent arg ...", "events": "ok"}}

A check returns None when all is well and the reason otherwise. A service
may add ``/stats`` (JSON numbers for operators and ``make bench``) and
``/metrics`` (Prometheus, shared/metrics.py).

``/stats`` tells internals (the renderer's: Chromium's processes, uids and
sandbox state), so the stand-alone server answers it only to loopback peers
(``make bench``, an operator on the host or in the container, ``kubectl
port-forward``) unless ``PLOTFARM_RENDERER_STATS_PUBLIC`` opens it; probes and
metrics stay reachable on the same port, as orchestrators and scrapers need.
"""

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared.metrics import Metrics
from shared.service import serve

Checks = dict[str, Callable[[], str | None]]


def when(condition: Callable[[], bool], reason: str) -> Callable[[], str | None]:
    """A check from a yes/no condition and what to say when it is no."""
    return lambda: None if condition() else reason


def add_health_routes(app: web.Application, checks: Checks) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        reasons = {name: check() for name, check in checks.items()}
        ready = all(reason is None for reason in reasons.values())
        results = {name: reason or "ok" for name, reason in reasons.items()}
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def from_loopback(request: web.Request) -> bool:
    """Whether the direct peer is this machine (127.0.0.0/8, ::1, or 127.x mapped into IPv6)."""
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def serve_health(
    host: str,
    port: int,
    checks: Checks,
    stats: Callable[[], Awaitable[dict]] | None = None,
    metrics: Metrics | None = None,
    *,
    stats_public: bool = False,
) -> web.AppRunner:
    """A stand-alone health server, for services with no HTTP interface of their own.

    ``stats_public``: answer ``/stats`` to any peer, not only loopback ones.
    """
    app = web.Application()
    add_health_routes(app, checks)
    if metrics is not None:
        metrics.add_route(app)
    if stats is not None:

        async def stats_route(request: web.Request) -> web.Response:
            if not (stats_public or from_loopback(request)):
                message = "/stats is served to loopback only (PLOTFARM_RENDERER_STATS_PUBLIC=true opens it)"
                return web.json_response({"error": message}, status=403)
            return web.json_response(await stats())

        app.router.add_get("/stats", stats_route)
    return await serve(app, host, port)
