"""The viewer's memory of jobs and the WebSocket clients it pushes changes to.

Each event from the stream is folded into a :class:`~shared.jobs.JobIndex`
(the same rules as the gateway: status only moves forward, the first result
wins), and every event that changed a job is pushed to every open page as the
job's whole current state, tagged with the stream offset it came from.

A page that reconnects says which offset it saw last; it gets the current
state of every job that changed after it, so nothing published during the gap
is missed and, because pages upsert by job id, nothing is shown twice.

Every ``job`` message carries ``received_at``: when this viewer read the
event from the stream (Unix time, milliseconds), so a page can tell how long
a result took from being published to reaching it, and which part of that was
the broker and which the WebSocket.

SVGs travel inside the messages only while they are small: a world map at 50 m
is a 9 MB SVG, and a page opening on a history of them would get one message
of tens of megabytes. A larger SVG, and any beyond a hello's budget, is sent
as ``svg_url`` instead, which the page loads from the viewer itself.
"""

import asyncio
import json
import time
from collections import deque

import structlog

from shared.jobs import JobIndex
from shared.messages import JobEvent

log = structlog.get_logger(__name__)

# The largest SVG sent inside a WebSocket message (bytes); larger ones go as svg_url.
INLINE_SVG_BYTES = 256_000
# What all the inline SVGs of one hello (a page opening) may add up to; the rest go as svg_url.
HELLO_INLINE_BUDGET_BYTES = 2_000_000


def svg_url(job_id: str, index: int) -> str:
    """Where the page fetches a figure's SVG from the viewer (relative to the page)."""
    return f"api/jobs/{job_id}/figures/{index}.svg"


def inline_small_svgs(view: dict, budget: list[int]) -> dict:
    """Keep SVGs inline while they are small and ``budget[0]`` bytes last; the others become URLs."""
    for figure in view.get("figures", []):
        svg = figure.get("svg")
        if svg is None:
            continue
        size = figure.get("bytes", len(svg))
        if size <= INLINE_SVG_BYTES and size <= budget[0]:
            budget[0] -= size
        else:
            del figure["svg"]
            figure["svg_url"] = svg_url(view["job_id"], figure["index"])
    return view


class LiveJobs:
    def __init__(self, history: int, max_bytes: int, outbox_size: int = 2000, tenant_share: float = 0.25):
        """``outbox_size``: changes queued for one page before it is told to reconnect;
        ``tenant_share``: of ``max_bytes``, what one tenant's results keep (shared/jobs.py)."""
        self.history = history
        self.outbox_size = outbox_size
        self.index = JobIndex(max_bytes, tenant_share)
        self.changes: deque[tuple[int, str]] = deque(maxlen=history * 8)
        self.last_offset = -1
        self.subscribers: dict[asyncio.Queue, str | None] = {}  # outbox -> the tenant it may see (None: all)

    def record(self, job_id: str, tenant: str | None = None):
        """The job's record; None if unknown, or another tenant's when ``tenant`` is given."""
        record = self.index.get(job_id)
        if record is None or (tenant is not None and record.tenant != tenant):
            return None
        return record

    def view(self, job_id: str, tenant: str | None = None, budget: list[int] | None = None) -> dict | None:
        """The job as pages show it: small SVGs inline, larger ones (and any past ``budget``) as
        ``svg_url``; PNGs only listed, fetched from /api/jobs/ID/figures/N.png."""
        record = self.record(job_id, tenant)
        if record is None:
            return None
        view = record.public_view(include_code=True, include=frozenset({"svg"}))
        return inline_small_svgs(view, budget if budget is not None else [INLINE_SVG_BYTES])

    def apply(self, event: JobEvent, offset: int) -> None:
        self.last_offset = max(self.last_offset, offset)
        if not self.index.apply(event):
            return
        self.changes.append((offset, event.job_id))
        # Serialised here, once, whatever the number of pages watching.
        message = json.dumps(
            {"type": "job", "offset": offset, "received_at": time.time() * 1000, "job": self.view(event.job_id)}
        )
        owner = self.index.get(event.job_id).tenant
        for outbox, tenant in list(self.subscribers.items()):
            if tenant is not None and owner != tenant:
                continue
            try:
                outbox.put_nowait(message)
            except asyncio.QueueFull:
                # A page too slow to keep up is told to go (None); it reconnects and resumes.
                self.subscribers.pop(outbox, None)
                while not outbox.empty():
                    outbox.get_nowait()
                outbox.put_nowait(None)

    def catch_up(self, since: int | None, tenant: str | None = None) -> dict:
        """What a page opening (since=None) or reconnecting (since=offset) needs first."""
        oldest = self.changes[0][0] if self.changes else self.last_offset + 1
        if since is None or since < oldest - 1:
            job_ids = list(self.index.records)[-self.history :]
        else:
            job_ids = list(dict.fromkeys(job_id for offset, job_id in self.changes if offset > since))
        budget = [HELLO_INLINE_BUDGET_BYTES]  # newest jobs first get their SVGs inline
        views = (self.view(job_id, tenant, budget) for job_id in reversed(job_ids))
        jobs = [view for view in views if view is not None][::-1]
        return {
            "type": "hello",
            "offset": self.last_offset,
            "resumed": since is not None,
            "history": self.history,
            "server_time": time.time() * 1000,
            "jobs": jobs,
        }

    def subscribe(self, tenant: str | None = None) -> asyncio.Queue:
        outbox: asyncio.Queue = asyncio.Queue(maxsize=self.outbox_size)
        self.subscribers[outbox] = tenant
        return outbox

    def unsubscribe(self, outbox: asyncio.Queue) -> None:
        self.subscribers.pop(outbox, None)
