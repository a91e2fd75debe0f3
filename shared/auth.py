"""API keys and the tenant behind each: shared by the gateway and the viewer.

Keys come from ``PLOTFARM_API_KEYS`` (comma-separated) and/or
``PLOTFARM_API_KEYS_FILE`` (one per line, ``#`` comments), each ``tenant=key``
or a bare key, whose tenant is then a hash of it. The tenant is always what
the server has on file for the key, never something the client says.
"""

import hashlib
import hmac
from pathlib import Path

from shared.settings import Settings


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


def presented_key(headers) -> str | None:
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("X-API-Key") or None
