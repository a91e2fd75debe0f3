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
"""

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from shared.settings import Settings

MAX_TRACKED_CALLERS = 100_000


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _parse_entry(entry: str) -> tuple[str, str] | None:
    """``tenant=key`` or a bare ``key`` (its tenant is then a hash of it)."""
    entry = entry.strip()
    if not entry or entry.startswith("#"):
        return None
    tenant, sep, key = entry.partition("=")
    if not sep:
        tenant, key = "", entry
    tenant, key = tenant.strip(), key.strip()
    return (tenant or f"key-{_digest(key).hex()[:12]}"), key


@dataclass(frozen=True)
class Caller:
    tenant: str | None  # None: anonymous (no keys configured)
    rate_key: str


CALLER = web.RequestKey("caller", Caller)


class ApiKeys:
    def __init__(self, entries: list[tuple[str, str]]):
        self._tenants = {_digest(key): tenant for tenant, key in entries}

    @classmethod
    def from_settings(cls, settings: Settings) -> "ApiKeys":
        raw = [e for e in settings.api_keys.split(",")]
        if settings.api_keys_file:
            raw += Path(settings.api_keys_file).read_text().splitlines()
        return cls([parsed for parsed in map(_parse_entry, raw) if parsed])

    @property
    def enabled(self) -> bool:
        return bool(self._tenants)

    def tenant_for(self, key: str | None) -> str | None:
        if not key:
            return None
        digest = _digest(key)
        for known, tenant in self._tenants.items():  # constant-time comparisons
            if hmac.compare_digest(known, digest):
                return tenant
        return None


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


def presented_key(headers) -> str | None:
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("X-API-Key") or None


def access_middleware(keys: ApiKeys, limiter: RateLimiter, protected_prefixes: tuple[str, ...]):
    """Authenticate API calls, attach ``request["caller"]``, and rate-limit submissions."""

    @web.middleware
    async def access_control(request: web.Request, handler):
        if not request.path.startswith(protected_prefixes):
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
