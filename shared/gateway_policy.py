"""How a caller of the gateway's HTTP API reads its answers and waits it out: one policy
for client.py and the MCP service (services/mcp/gateway.py).

What the gateway's answers mean to a caller:

* **busy** (:class:`Busy`): 429, this caller's rate limit, or 503, the broker
  cannot take the job now; both say when to come back (``Retry-After``);
* **refused** (:class:`Refused`): any other 4xx: the request is wrong (bad
  input, a missing or wrong key, an unknown job), and no retry will cure it;
* **unreachable** (:class:`Unreachable`): no HTTP answer at all. Only a
  refused connection is known to have sent nothing, so only then is a
  submission safe to send again;
* anything else (5xx): :class:`GatewayError`.

How long to wait, and how many times, is a :class:`Patience`. A submission is
sent again after *busy* (as ``Retry-After`` says, capped) and after a refused
connection, as often as the caller's patience allows (a batch: for as long as
the gateway says busy); a long poll of a job already queued is repeated
through a gateway that is briefly away or overloaded until the caller's
deadline (the job is safe in its queue), unless the caller would rather fail
at once.

shared/retry.py is the project's way for a service's own dependencies (the
broker, its browser); this is the other side of the same coin, for callers of
the gateway, which tells them when to come back.

Standard library only, and Python 3.9: ``python3 client.py`` imports this from a
checkout without the project's virtualenv (shared/__init__.py imports nothing).
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from dataclasses import dataclass

BUSY = (429, 503)
# Worth polling again: the gateway (or a proxy before it) is restarting or overloaded; the job is still queued.
TRANSIENT = (429, 502, 503, 504)
DEFAULT_RETRY_AFTER_S = 1.0  # when the answer does not say, or there was no answer


class GatewayError(Exception):
    """The gateway did not do what was asked. ``status``: its HTTP status; None: no answer came."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        details: list | None = None,
        retry_after: float = DEFAULT_RETRY_AFTER_S,
    ):
        super().__init__(message)
        self.message, self.status, self.details, self.retry_after = message, status, details or [], retry_after

    def describe(self) -> str:
        """The message, and a line for every field the gateway found wrong."""
        lines = [self.message]
        lines += [f"  {d.get('field')}: {d.get('message')}" for d in self.details if isinstance(d, dict)]
        return "\n".join(lines)


class Refused(GatewayError):
    """4xx other than 429: a bad request (400/413), a missing or wrong key (401), an unknown job (404)."""


class Busy(GatewayError):
    """429 or 503: plotfarm is rate limiting this caller or cannot take jobs now; ``retry_after`` says when."""


class Unreachable(GatewayError):
    """No HTTP answer: connection refused, DNS, timeout. ``nothing_sent``: the connection was refused,
    so the request certainly did not reach the gateway (even a submission may be sent again)."""

    def __init__(self, message: str, nothing_sent: bool = False):
        super().__init__(message)
        self.nothing_sent = nothing_sent


def retry_after_seconds(value: str | None, default: float = DEFAULT_RETRY_AFTER_S) -> float:
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


def error_message(status: int, body: bytes, reason: str = "") -> tuple[str, list]:
    """What an answer's body says went wrong: the gateway's ``{"error": ..., "details": [...]}``,
    or (from something else on the way, a proxy) its text; an HTML page says no more than the reason phrase."""
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace").strip()
        return (text if not text.startswith("<") else "") or reason or f"HTTP {status}", []
    if isinstance(payload, dict):
        return str(payload.get("error") or payload), payload.get("details") or []
    return str(payload), []


def error_for(status: int, body: bytes, reason: str = "", retry_after: str | None = None) -> GatewayError:
    """The error an HTTP answer other than the one asked for means, from its status, body,
    reason phrase and ``Retry-After``."""
    message, details = error_message(status, body, reason)
    wait = retry_after_seconds(retry_after)
    if status in BUSY:
        return Busy(message, status, details, wait)
    if 400 <= status < 500:
        return Refused(message, status, details, wait)
    return GatewayError(f"the gateway answered {status}: {message}", status, details, wait)


@dataclass(frozen=True)
class Patience:
    """How long a caller waits out a gateway that cannot answer now, and how many times."""

    busy_retries: int | None = 3  # submissions sent again after 429/503; None: for as long as the gateway says so
    connect_retries: int = 3  # submissions sent again after a refused connection
    max_wait_s: float = 30.0  # the longest single wait, whatever Retry-After says
    jitter_s: float = 0.0  # added to a busy wait, at most: many workers told the same Retry-After come back spread
    poll_until_deadline: bool = True  # False: the first failed long poll is final (an interactive run says so at once)

    def before_polling_again(self, error: GatewayError, remaining_s: float) -> float | None:
        """Seconds to wait before the next long poll after ``error``, ``remaining_s`` before the
        caller's deadline; None: give up (raise it)."""
        if not self.poll_until_deadline or remaining_s <= 0:
            return None
        if isinstance(error, Unreachable) or error.status in TRANSIENT:
            return min(error.retry_after, self.max_wait_s, remaining_s)
        return None


class Resubmissions:
    """One submission's retries under a :class:`Patience`: how often it met a busy gateway, a refused connection."""

    def __init__(self, patience: Patience):
        self.patience = patience
        self.busy = 0
        self.refused_connections = 0

    def wait_after(self, error: GatewayError) -> float | None:
        """Seconds to wait before sending the submission again after ``error``; None: give up (raise it)."""
        patience = self.patience
        if isinstance(error, Busy):
            self.busy += 1
            if patience.busy_retries is None or self.busy <= patience.busy_retries:
                return min(error.retry_after, patience.max_wait_s) + random.uniform(0, patience.jitter_s)
        elif isinstance(error, Unreachable) and error.nothing_sent:
            self.refused_connections += 1
            if self.refused_connections <= patience.connect_retries:
                return min(float(self.refused_connections), patience.max_wait_s)  # 1 s, 2 s...: a restart
        return None
