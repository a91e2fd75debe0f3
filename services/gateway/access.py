"""Who may use the API: optional API keys, the tenant behind each, and rate limits.

With no keys configured the API is open and every caller is anonymous. With
keys (``PLOTFARM_API_KEYS`` and/or ``PLOTFARM_API_KEYS_FILE``), every API call
needs one (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``), and the
tenant is whatever the server has on file for that key, never something the
client says. Tenants see only their own jobs, and renderers reuse an
interpreter only within one tenant when ``PLOTFARM_ISOLATION=tenant``.

Job submissions are rate limited per tenant, or per client address for
anonymous callers: a token bucket refilled at ``PLOTFARM_RATE_LIMIT_PER_MINUTE``
with room for ``PLOTFARM_RATE_LIMIT_BURST``; beyond it, 429 with Retry-After.
The buckets are this process's: with several gateway replicas the limits are
per replica. The client address is the one shared/proxies.py made
``request.remote``: from ``X-Forwarded-For`` only behind a trusted proxy.
"""

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from shared.auth import ApiKeys, presented_key

MAX_TRACKED_CALLERS = 100_000


@dataclass(frozen=True)
class Caller:
    tenant: str | None  # None: anonymous (no keys configured)
    rate_key: str


CALLER = web.RequestKey("caller", Caller)


class RateLimiter:
    """Token buckets per caller; ``per_minute=0`` turns limiting off."""

    def __init__(self, per_minute: int, burst: int, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, key: str) -> int:
        """0 when the call may proceed (and is counted), else whole seconds to wait."""
        if self.rate <= 0:
            return 0
        now = self.clock()
        tokens, stamp = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        wait = 0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = max(1, math.ceil((1 - tokens) / self.rate))
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_TRACKED_CALLERS:
            self._buckets.popitem(last=False)
        return wait


def access_middleware(
    keys: ApiKeys,
    limiter: RateLimiter,
    protected_prefixes: tuple[str, ...],
    public_paths: tuple[str, ...] = (),
    public_prefixes: tuple[str, ...] = (),
):
    """Authenticate API calls, attach ``request["caller"]``, and rate-limit submissions.

    ``public_paths`` and ``public_prefixes`` are exceptions under the protected prefixes
    (the API's own description and its docs page), open to anyone.
    """

    @web.middleware
    async def access_control(request: web.Request, handler):
        path = request.path
        if (
            not path.startswith(protected_prefixes)
            or path in public_paths
            or (public_prefixes and path.startswith(public_prefixes))
        ):
            return await handler(request)
        tenant = None
        if keys.enabled:
            tenant = keys.tenant_for(presented_key(request.headers))
            if tenant is None:
                return web.json_response(
                    {"error": "a valid API key is required (Authorization: Bearer <key> or X-API-Key)"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="plotfarm"'},
                )
        caller = Caller(tenant, f"tenant:{tenant}" if tenant else f"ip:{request.remote}")
        request[CALLER] = caller
        if request.method == "POST":
            wait = limiter.retry_after(caller.rate_key)
            if wait:
                return web.json_response(
                    {"error": f"too many jobs; retry in {wait} s"}, status=429, headers={"Retry-After": str(wait)}
                )
        return await handler(request)

    return access_control
