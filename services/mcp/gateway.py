"""The gateway's HTTP API as the MCP service uses it: submit, long-poll, fetch figures.

Async throughout (httpx2, the HTTP client the MCP SDK already depends on).
Every call carries the caller's API key when there is one. What the answers
mean, and how long to wait them out, is shared/gateway_policy.py (client.py
follows it too): errors become its exceptions, which say what happened in
words an agent can act on: :class:`Refused` (4xx: the request is wrong, or
the key), :class:`Busy` (429/503 still after the retries),
:class:`Unreachable` (no answer at all).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx2
import structlog

from shared.gateway_policy import (
    Busy,
    GatewayError,
    Patience,
    Resubmissions,
    Unreachable,
    error_for,
    error_message,
)
from shared.settings import Settings

log = structlog.get_logger(__name__)

FINAL = ("done", "failed")
POLL_S = 30.0  # one long poll; shorter than the gateway's maximum so progress keeps flowing
LONG_POLL_SLACK_S = 15.0  # beyond ?wait=S, time the HTTP request itself may take


def _error_of(response: httpx2.Response) -> GatewayError:
    return error_for(
        response.status_code, response.content, response.reason_phrase, response.headers.get("Retry-After")
    )


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
        retries = settings.mcp_busy_retries
        self.patience = Patience(
            busy_retries=retries, connect_retries=retries, max_wait_s=settings.mcp_max_retry_after_s
        )

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
            raise Unreachable(f"cannot reach the plotfarm gateway at {self.base}: {exc}", nothing_sent=True) from exc
        except httpx2.TimeoutException as exc:
            raise Unreachable(
                f"the plotfarm gateway at {self.base} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx2.TransportError as exc:
            raise Unreachable(f"talking to the plotfarm gateway at {self.base} failed: {exc}") from exc

    async def submit(self, body: dict, api_key: str | None) -> dict:
        """POST /api/jobs; when busy (or the connection is refused) wait as :attr:`patience` says and try again."""
        retries = Resubmissions(self.patience)
        while True:
            try:
                response = await self._request("POST", f"{self.base}/api/jobs", api_key, json=body)
                if response.status_code == 202:
                    return response.json()
                raise _error_of(response)
            except (Busy, Unreachable) as exc:
                wait = retries.wait_after(exc)
                if wait is None:
                    raise
                log.info("gateway busy or away; retrying", status=exc.status, wait_s=wait, error=exc.message)
                await self.sleep(wait)

    async def wait(
        self,
        job_id: str,
        api_key: str | None,
        timeout_s: float,
        on_status: Callable[[dict], Awaitable[None]] | None = None,
    ) -> dict:
        """Long-poll until the job is final or ``timeout_s`` passed; returns the last status seen."""
        deadline = time.monotonic() + timeout_s
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
                if response.status_code != 200:
                    raise _error_of(response)
            except GatewayError as exc:
                # The job is safe in its queue; a gateway restart or a blip must not lose the caller's result.
                pause = self.patience.before_polling_again(exc, remaining)
                if pause is None:
                    raise
                log.warning("long poll failed; polling again", job_id=job_id, status=exc.status, error=exc.message)
                await self.sleep(pause)
                continue
            status = response.json()
            if status.get("status") in FINAL or remaining <= 0:
                return status
            if on_status is not None:
                await on_status(status)

    async def fetch(self, url_or_path: str, api_key: str | None) -> bytes | None:
        """One figure file; None when the gateway has no such file (404: e.g. a format it does not make)."""
        response = await self._request("GET", self.url(url_or_path), api_key, accept="*/*")
        if response.status_code == 200:
            return response.content
        if response.status_code == 404:
            return None
        message, _ = error_message(response.status_code, response.content, response.reason_phrase)
        raise GatewayError(f"fetching {urlsplit(url_or_path).path} failed: {response.status_code} {message}")

    async def ready(self) -> str | None:
        """None when the gateway answers its /readyz with 200, else why not."""
        try:
            response = await self.http.get(f"{self.base}/readyz", timeout=5)
        except httpx2.HTTPError as exc:
            return f"gateway {self.base} unreachable: {exc}"
        return None if response.status_code == 200 else f"gateway {self.base} not ready ({response.status_code})"
