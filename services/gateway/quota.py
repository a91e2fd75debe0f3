"""Each tenant's share of the events stream, enforced when a job is submitted.

The events stream is where results live (shared/topology.py): a gateway or
viewer that restarts knows only the results the stream still holds. Its
retention (``events_max_bytes``, ``events_max_age``) drops the oldest events
first, whoever they belong to, so one tenant's large results could push every
other tenant's results out. Nobody can choose what a stream drops, so the share
is enforced where results come from: a submission is refused (429) when its
tenant holds more than its share of the stream (``tenant_share`` of
``events_max_bytes``) *and* the result it asks for would push another tenant's
events out. A tenant within its share, or alone in the stream, is never refused
for this.

Every gateway reads the whole stream, so each one knows who holds what without
asking anyone: :class:`StreamShare` follows the retained events as a FIFO of
*slices* (consecutive bytes of the stream, at most 1/``SLICES`` of it each,
with the bytes each owner has in them), trimmed as the broker's retention
trims: to ``events_max_bytes`` (whole slices), and by ``events_max_age``. Its
memory is bounded by the number of slices, however the tenants' events
interleave (one record per event would be millions of them for a full stream
of small events). It is an estimate: the broker drops whole segments and counts
its own framing, and jobs accepted in a burst are counted only once their events
come back.
"""

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from shared.events import event_time
from shared.messages import JobEvent, JobQueued, JobStarted
from shared.settings import Settings
from shared.topology import events_segment_bytes

log = structlog.get_logger(__name__)

# The owner of bytes that are no tenant's: a `running` event of a job whose `queued` event was not
# seen (it says nothing of its tenant). They fill the stream, but pushing them out harms nobody.
NOBODY = object()
# Jobs between their `queued` event and their result, whose `running` events are their tenant's.
MAX_IN_FLIGHT = 200_000
# Slices the retained stream is followed in: each holds at most 1/SLICES of its bytes and of its age.
SLICES = 1024
AGE_UNITS_S = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


def max_age_seconds(max_age: str) -> float | None:
    """RabbitMQ's ``x-max-age`` ("7D", "12h", ...: Y, M, D, h, m, s) in seconds; None if it is not one."""
    match = re.fullmatch(r"(\d+)([YMDhms])", max_age.strip())
    return int(match[1]) * AGE_UNITS_S[match[2]] if match else None


@dataclass(slots=True)
class Slice:
    """Consecutive bytes of the stream: from byte ``start`` of everything appended, ``size`` bytes."""

    start: int
    size: int
    oldest: float  # Unix time of its first event
    newest: float  # and of its last
    owners: dict = field(default_factory=dict)  # owner -> its bytes in this slice


class StreamShare:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        """``clock``: now, in Unix time (events carry their own Unix times)."""
        self.clock = clock
        self.max_bytes = settings.events_max_bytes
        self.share_bytes = settings.tenant_share * settings.events_max_bytes
        # What a job's result may add, and what the broker drops at once when the stream is full.
        self.next_result_bytes = settings.max_result_bytes
        self.segment_bytes = events_segment_bytes(settings)
        self.max_age_s = max_age_seconds(settings.events_max_age)
        if self.max_age_s is None:
            log.warning("events_max_age not understood; the stream share ignores age", max_age=settings.events_max_age)
        self.slice_bytes = max(1, self.max_bytes // SLICES)
        self.slice_span_s = self.max_age_s / SLICES if self.max_age_s else None
        self.slices: deque[Slice] = deque()
        self.appended = 0  # bytes of every event seen, so a slice's start is its place in the stream
        self.total = 0  # bytes retained
        self.held: dict[object, int] = {}  # retained bytes per owner
        self.last_offset = -1
        self.in_flight: OrderedDict[str, str | None] = OrderedDict()  # job id -> tenant

    def add_event(self, event: JobEvent, offset: int, size: int) -> None:
        """Count an event read from the stream (EventFollower's ``on_stored``)."""
        if isinstance(event, JobQueued):
            owner = self.in_flight[event.job_id] = event.tenant
            while len(self.in_flight) > MAX_IN_FLIGHT:
                self.in_flight.popitem(last=False)
        elif isinstance(event, JobStarted):
            owner = self.in_flight.get(event.job_id, NOBODY)
        else:
            owner = event.tenant
            self.in_flight.pop(event.job_id, None)
        self.add(offset, owner, size, event_time(event).timestamp())

    def add(self, offset: int, owner: object, size: int, at: float) -> None:
        if offset <= self.last_offset:
            return  # read again after a reconnect: already counted
        self.last_offset = offset
        last = self.slices[-1] if self.slices else None
        if (
            last is None
            or last.size >= self.slice_bytes
            or (self.slice_span_s is not None and at - last.oldest >= self.slice_span_s)
        ):
            last = Slice(self.appended, 0, at, at)
            self.slices.append(last)
        last.size += size
        last.newest = max(last.newest, at)
        last.owners[owner] = last.owners.get(owner, 0) + size
        self.appended += size
        self.total += size
        self.held[owner] = self.held.get(owner, 0) + size
        self._trim(self.clock())

    def _trim(self, now: float) -> None:
        """Forget what the broker's retention has dropped by now: the oldest slices beyond the limit, old ones."""
        while self.slices and self.max_age_s is not None and self.slices[0].newest < now - self.max_age_s:
            self._drop_first()
        while self.total > self.max_bytes:
            self._drop_first()

    def _drop_first(self) -> None:
        """Forget the stream's oldest slice."""
        dropped = self.slices.popleft()
        self.total -= dropped.size
        for owner, size in dropped.owners.items():
            self.held[owner] -= size
            if not self.held[owner]:
                del self.held[owner]

    def refusal(self, tenant: str | None) -> str | None:
        """Why ``tenant`` may not submit a job now, or None when it may.

        Refused only when all of these hold: the tenant holds more than its share
        of the stream; the stream would overflow with one more result of the
        largest size allowed; and what the broker would then drop (the oldest
        bytes, at least one segment) holds events of another tenant.
        """
        self._trim(self.clock())
        held = self.held.get(tenant, 0)
        if held <= self.share_bytes:
            return None
        overflow = self.total + self.next_result_bytes - self.max_bytes
        if overflow <= 0:
            return None
        dropped_until = self.slices[0].start + max(overflow, self.segment_bytes)
        others = False
        for piece in self.slices:
            if piece.start >= dropped_until:
                break
            if any(owner != tenant and owner is not NOBODY and size for owner, size in piece.owners.items()):
                others = True
                break
        if not others:
            return None
        return (
            f"your results fill your share of the events stream ({held / 1e6:.1f} of {self.share_bytes / 1e6:.1f} MB;"
            f" PLOTFARM_TENANT_SHARE), and it is full: another result now would push other tenants' results out "
            "of it. Retry later, when older results have left the stream"
        )

    def check(self, tenant: str | None, headers: dict[str, str]) -> None:
        """Raise 429 (with ``headers``: Retry-After) when ``tenant`` may not submit now."""
        reason = self.refusal(tenant)
        if reason is not None:
            log.warning("job refused: tenant over its share of the events stream", tenant=tenant)
            raise web.HTTPTooManyRequests(text=reason, headers=headers)
