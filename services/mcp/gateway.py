"""The gateway's HTTP API as the MCP service uses it: submit, long-poll, fetch figures.

Async throughout (httpx2, the HTTP client the MCP SDK already depends on).
Every call carries the caller's API key when there is one. Errors become
exceptions that say what happened in words an agent can act on:
:class:`Refused` (4xx: the request is wrong, or the key), :class:`Busy`
(429/503 still after the retries), :class:`Unreachable` (no answer at all).
"""

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx2
import structlog

from shared.settings import Settings

log = structlog.get_logger(__name__)

FINAL = ("done", "failed")
POLL_S = 30.0  # one long poll; shorter than the gateway's maximum so progress keeps flowing
LONG_POLL_SLACK_S = 15.0  # beyond ?wait=S, time the HTTP request itself may take


class GatewayError(Exception):
    def __init__(self, message: str, status: int | None = None, details: list | None = None):
        super().__init__(message)
        self.message, self.status, self.details = message, status, details or []

    def describe(self) -> str:
        lines = [self.message]
        lines += [f"  {d.get('field')}: {d.get('message')}" for d in self.details if isinstance(d, dict)]
        return "\n".join(lines)


class Refused(GatewayError):
    """4xx other than 429: a bad request (400/413), a missing or wrong key (401), an unknown job (404)."""


class Busy(GatewayError):
    """429 or 503 on every attempt: plotfarm is rate limiting this caller or cannot take jobs now."""

    def __init__(self, message: str, status: int, retry_after: float):
        super().__init__(message, status)
        self.retry_after = retry_after


class Unreachable(GatewayError):
    """No HTTP answer: connection refused, DNS, timeout."""


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _error_of(response: httpx2.Response) -> tuple[str, list]:
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip() or response.reason_phrase or f"HTTP {response.status_code}"), []
    if isinstance(body, dict):
        return str(body.get("error") or body), body.get("details") or []
    return str(body), []


class GatewayClient:
    def __init__(
        self,
        settings: Settings,
        http: httpx2.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.settings = settings
        self.base = settings.mcp_gateway_url.rstrip("/")
        self.http = http or httpx2.AsyncClient(
            timeout=httpx2.Timeout(settings.mcp_request_timeout_s),
            limits=httpx2.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )
        self.sleep = sleep

    async def aclose(self) -> None:
        await self.http.aclose()

    def url(self, url_or_path: str) -> str:
        """A URL on *our* gateway address: the gateway hands out its public URLs
        (``PLOTFARM_PUBLIC_GATEWAY_URL``), which this service may not be able to reach."""
        parts = urlsplit(url_or_path)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{self.base}{path}"

    @staticmethod
    def headers(api_key: str | None, accept: str = "application/json") -> dict:
        return {"Accept": accept, **({"Authorization": f"Bearer {api_key}"} if api_key else {})}

    async def _request(
        self, method: str, url: str, api_key: str | None, accept: str = "application/json", **kwargs
    ) -> httpx2.Response:
        try:
            return await self.http.request(method, url, headers=self.headers(api_key, accept), **kwargs)
        except httpx2.ConnectError as exc:
            raise Unreachable(f"cannot reach the plotfarm gateway at {self.base}: {exc}") from exc
        except httpx2.TimeoutException as exc:
            raise Unreachable(
                f"the plotfarm gateway at {self.base} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx2.TransportError as exc:
            raise Unreachable(f"talking to the plotfarm gateway at {self.base} failed: {exc}") from exc

    async def submit(self, body: dict, api_key: str | None) -> dict:
        """POST /api/jobs; on 429/503 (or no connection) wait as told and try again, a few times."""
        attempts = self.settings.mcp_busy_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self._request("POST", f"{self.base}/api/jobs", api_key, json=body)
            except Unreachable as exc:
                # Only a refused connection is safe to retry: the job was certainly not sent.
                if not isinstance(exc.__cause__, httpx2.ConnectError) or attempt == attempts:
                    raise
                wait = min(float(attempt), self.settings.mcp_max_retry_after_s)
                log.warning("gateway unreachable; retrying", attempt=attempt, wait_s=wait, error=str(exc))
                await self.sleep(wait)
                continue
            if response.status_code == 202:
                return response.json()
            message, details = _error_of(response)
            if response.status_code in (429, 503):
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if attempt == attempts:
                    raise Busy(message, response.status_code, retry_after)
                wait = min(retry_after, self.settings.mcp_max_retry_after_s)
                log.info(
                    "gateway busy; retrying", status=response.status_code, attempt=attempt, wait_s=wait, error=message
                )
                await self.sleep(wait)
                continue
            if 400 <= response.status_code < 500:
                raise Refused(message, response.status_code, details)
            raise GatewayError(f"the gateway answered {response.status_code}: {message}", response.status_code)
        raise AssertionError("unreachable")  # pragma: no cover

    async def wait(
        self,
        job_id: str,
        api_key: str | None,
        timeout_s: float,
        on_status: Callable[[dict], Awaitable[None]] | None = None,
    ) -> dict:
        """Long-poll until the job is final or ``timeout_s`` passed; returns the last status seen."""
        deadline = time.monotonic() + timeout_s
        status: dict = {"job_id": job_id, "status": "queued"}
        hiccups = 0
        while True:
            remaining = deadline - time.monotonic()
            wait = max(0.0, min(POLL_S, remaining))
            try:
                response = await self._request(
                    "GET",
                    f"{self.base}/api/jobs/{job_id}",
                    api_key,
                    params={"wait": f"{wait:.1f}", "include": "svg"},
                    timeout=wait + LONG_POLL_SLACK_S,
                )
            except Unreachable as exc:
                # The job is safe in its queue; a gateway restart or a blip must not lose the caller's result.
                hiccups += 1
                if remaining <= 0 or hiccups > 5:
                    raise
                log.warning("long poll failed; polling again", job_id=job_id, error=str(exc))
                await self.sleep(min(float(hiccups), max(0.0, remaining)))
                continue
            if response.status_code == 200:
                status = response.json()
                hiccups = 0
                if status.get("status") in FINAL or remaining <= 0:
                    return status
                if on_status is not None:
                    await on_status(status)
                continue
            message, details = _error_of(response)
            if response.status_code in (429, 502, 503, 504) and remaining > 0:
                # e.g. a freshly started gateway still reading the job history
                await self.sleep(min(retry_after_seconds(response.headers.get("Retry-After")), max(0.0, remaining)))
                continue
            if 400 <= response.status_code < 500:
                raise Refused(message, response.status_code, details)
            raise GatewayError(f"the gateway answered {response.status_code}: {message}", response.status_code)

    async def fetch(self, url_or_path: str, api_key: str | None) -> bytes | None:
        """One figure file; None when the gateway has no such file (404: e.g. a format it does not make)."""
        response = await self._request("GET", self.url(url_or_path), api_key, accept="*/*")
        if response.status_code == 200:
            return response.content
        if response.status_code == 404:
            return None
        message, _ = _error_of(response)
        raise GatewayError(f"fetching {urlsplit(url_or_path).path} failed: {response.status_code} {message}")

    async def ready(self) -> str | None:
        """None when the gateway answers its /readyz with 200, else why not."""
        try:
            response = await self.http.get(f"{self.base}/readyz", timeout=5)
        except httpx2.HTTPError as exc:
            return f"gateway {self.base} unreachable: {exc}"
        return None if response.status_code == 200 else f"gateway {self.base} not ready ({response.status_code})"
