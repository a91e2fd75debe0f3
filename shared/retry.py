"""Trying again, one way for the whole project.

Every retry in plotfarm is one of two kinds, and says which:

* **bounded**: at most ``attempts`` tries, then :class:`RetriesExhausted`, a
  named error that carries what was being done and the last cause;
* **forever** (``attempts=None``): for things a service cannot work without
  and should wait for (the broker, its browser), logging every failed
  attempt with its cause, so a stuck service is never silent.

Either way the pause between tries grows by :class:`Backoff` (capped, with a
little jitter so many processes do not retry in lockstep). Exceptions in
``give_up_on`` are not retried at all: they are not the kind of failure time
cures (a refused topology, a missing binary).

Callers of the gateway's HTTP API (client.py, the MCP service) wait as
shared/gateway_policy.py says instead: the gateway tells them when to come
back (``Retry-After``), and client.py runs without this module's structlog.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RetriesExhausted(Exception):
    """A bounded retry failed every time; ``what`` was being done, ``__cause__`` is the last failure."""

    def __init__(self, what: str, attempts: int, cause: BaseException):
        super().__init__(f"{what}: failed {attempts} times; last: {cause!r}")
        self.what = what
        self.attempts = attempts


@dataclass(frozen=True)
class Backoff:
    """Pause before attempt n+1: ``first_s * factor**(n-1)``, at most ``max_s``, plus up to ``jitter`` of it."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.1

    def delay(self, failures: int) -> float:
        return self._base(failures) * (1 + random.uniform(0, self.jitter))

    def longest(self, failures: int) -> float:
        """The longest :meth:`delay` can be (its jitter at the top)."""
        return self._base(failures) * (1 + self.jitter)

    def _base(self, failures: int) -> float:
        return min(self.max_s, self.first_s * self.factor ** max(0, failures - 1))


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int | None,
    backoff: Backoff = Backoff(),
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    give_up_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Run ``operation`` until it succeeds; ``attempts=None`` means forever (explicitly)."""
    failures = 0
    while True:
        try:
            return await operation()
        except give_up_on:
            raise
        except retry_on as exc:
            failures += 1
            if attempts is not None and failures >= attempts:
                log.error("giving up", what=what, attempts=failures, cause=repr(exc)[:300])
                raise RetriesExhausted(what, failures, exc) from exc
            delay = backoff.delay(failures)
            log.warning(
                "failed, retrying",
                what=what,
                attempt=failures,
                of=attempts or "forever",
                cause=repr(exc)[:300],
                retry_in_s=round(delay, 2),
            )
            await asyncio.sleep(delay)
