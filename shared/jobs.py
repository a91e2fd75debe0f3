"""What a gateway or viewer knows about jobs: built from the events stream, kept in memory.

Every gateway and viewer reads the whole events stream (see
shared/topology.py), so any of them can answer for any job, and a restarted
one rebuilds this index by replaying the stream.

Status only moves forward (queued -> running -> done|failed), because events
from different publishers can reach the stream in either order (a renderer may
announce ``running`` before the gateway's ``queued`` lands). The first final
result for a job wins: at-least-once delivery can render a job twice, and a
user must always get the same answer.

Memory is bounded: once the kept results exceed ``max_bytes``, finished jobs
are forgotten (their results stay in the stream until its retention drops
them), fairly between tenants: while a tenant holds more than its share of
the budget (``tenant_share``), its own oldest results go first, so one
tenant's large results cannot push every other tenant's out; otherwise the
oldest finished job goes. A tenant alone (or the open API's ``None`` tenant)
still has the whole budget. Jobs not finished yet are never forgotten.
"""

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from shared.messages import Figure, JobEvent, JobQueued, JobStarted, RenderResult
from shared.vocabulary import BINARY_FORMATS, FINAL_STATUSES, FORMATS


@dataclass
class JobRecord:
    job_id: str
    status: str = "queued"
    submitted_at: datetime | None = None
    tenant: str | None = None
    code: str = ""
    renderer_id: str | None = None
    attempt: int = 0
    result: RenderResult | None = None
    size: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def public_view(self, *, include_code: bool = False, include: frozenset[str] = frozenset()) -> dict:
        """The job as JSON for clients: status, timings, output, error, figures.

        Each figure lists its ``files`` (the formats the job asked for, with
        their sizes); ``include`` names formats to put inline as well: ``svg``
        (the SVG text), ``png`` (base64), ``json`` (the figure itself).
        """
        view = {
            "job_id": self.job_id,
            "status": self.status,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "renderer_id": self.renderer_id,
            "attempt": self.attempt or None,
        }
        if include_code:
            view["code"] = self.code
        result = self.result
        if result is not None:
            view.update(
                finished_at=result.finished_at.isoformat(),
                timings=result.timings.model_dump(),
                stdout=result.stdout,
                stderr=result.stderr,
                error=result.error.model_dump() if result.error else None,
                packages=result.packages,
                warnings=result.warnings,
                figures=[figure_view(n, figure, include) for n, figure in enumerate(result.figures)],
            )
        return view


def figure_size(figure: Figure) -> int:
    """Bytes a figure holds in memory (its SVG, its binary files as base64, and its figure JSON)."""
    spec = len(json.dumps(figure.spec)) if figure.spec is not None else 0
    binary = sum(len(getattr(figure, fmt) or "") for fmt in BINARY_FORMATS)
    return len(figure.svg or "") + binary + spec


def decoded_size(encoded: str) -> int:
    """Bytes of a base64 string's content, without decoding it."""
    return len(encoded) * 3 // 4 - encoded[-2:].count("=")


def figure_view(n: int, figure: Figure, include: frozenset[str]) -> dict:
    files = {}
    if figure.svg is not None:
        files["svg"] = {"bytes": len(figure.svg.encode())}
    for fmt in FORMATS:  # in the vocabulary's order: png, jpeg, webp, pdf
        if fmt in BINARY_FORMATS and (encoded := getattr(figure, fmt)) is not None:
            files[fmt] = {"bytes": decoded_size(encoded)}
    if figure.spec is not None:
        files["json"] = {"bytes": len(json.dumps(figure.spec))}
        files["html"] = {}
    view = {"index": n, "files": files}
    if figure.svg is not None:
        view["bytes"] = files["svg"]["bytes"]  # as before formats: the SVG's size
    if "svg" in include and figure.svg is not None:
        view["svg"] = figure.svg
    if "png" in include and figure.png is not None:
        view["png"] = figure.png
    if "json" in include and figure.spec is not None:
        view["spec"] = figure.spec
    return view


@dataclass
class TenantResults:
    """One tenant's finished jobs in the index, the oldest first, and the bytes they hold."""

    jobs: OrderedDict[str, None] = field(default_factory=OrderedDict)
    bytes: int = 0


class JobIndex:
    def __init__(self, max_bytes: int, tenant_share: float = 0.25):
        """``tenant_share``: the fraction of ``max_bytes`` a tenant's results keep when others need room
        (PLOTFARM_TENANT_SHARE; 0.25 is its default)."""
        self.max_bytes = max_bytes
        self.share_bytes = tenant_share * max_bytes
        self.records: OrderedDict[str, JobRecord] = OrderedDict()
        self.kept_bytes = 0  # of every record, finished or not
        self.duplicates = 0
        # Finished jobs in the order they finished: all of them, and per tenant with their bytes.
        # The tenants holding more than their share are few (at most about 1 / tenant_share), so
        # choosing what to forget looks at them, never at every record.
        self.finished: OrderedDict[str, None] = OrderedDict()
        self.tenants: dict[str | None, TenantResults] = {}
        self.over_share: set[str | None] = set()

    def get(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id)

    def _record(self, job_id: str) -> JobRecord:
        record = self.records.get(job_id)
        if record is None:
            record = self.records[job_id] = JobRecord(job_id)
        return record

    def apply(self, event: JobEvent) -> bool:
        """Fold one event in; False when it told nothing new (a late or duplicate event)."""
        record = self._record(event.job_id)
        if isinstance(event, JobQueued):
            if record.submitted_at is not None:
                return False
            # A result that came first, without these details, is already counted under its tenant.
            self._unlist(record)
            record.submitted_at, record.tenant = event.submitted_at, event.tenant
            self._resize(record, record.size - len(record.code) + len(event.code))
            record.code = event.code
            self._list(record)
            self._evict()
            return True
        if record.final:
            self.duplicates += isinstance(event, RenderResult)
            return False
        if isinstance(event, JobStarted):
            if event.attempt < record.attempt:
                return False
            record.status, record.renderer_id, record.attempt = "running", event.renderer_id, event.attempt
            return True
        self._finish(record, event)
        return True

    def _finish(self, record: JobRecord, result: RenderResult) -> None:
        record.status, record.result = result.status, result
        record.submitted_at = record.submitted_at or result.submitted_at
        record.tenant = record.tenant or result.tenant
        record.code = record.code or result.code
        record.renderer_id, record.attempt = result.renderer_id, result.attempt
        figures = sum(figure_size(figure) for figure in result.figures)
        self._resize(record, figures + len(result.stdout) + len(result.stderr) + len(record.code))
        self.finished[record.job_id] = None
        self._list(record)
        record.finished.set()
        self._evict()

    def _resize(self, record: JobRecord, size: int) -> None:
        """(A finished record is resized only while it is not listed under its tenant.)"""
        self.kept_bytes += size - record.size
        record.size = size

    def _list(self, record: JobRecord) -> None:
        """Count a finished record under its tenant, as that tenant's newest."""
        if record.final:
            self.tenants.setdefault(record.tenant, TenantResults()).jobs[record.job_id] = None
            self._count(record.tenant, record.size)

    def _unlist(self, record: JobRecord) -> None:
        if record.final:
            self._count(record.tenant, -record.size)
            results = self.tenants[record.tenant]
            del results.jobs[record.job_id]
            if not results.jobs:
                del self.tenants[record.tenant]
                self.over_share.discard(record.tenant)

    def _count(self, tenant: str | None, delta: int) -> None:
        results = self.tenants.setdefault(tenant, TenantResults())
        results.bytes += delta
        if results.bytes > self.share_bytes:
            self.over_share.add(tenant)
        else:
            self.over_share.discard(tenant)

    def _evict(self) -> None:
        while self.kept_bytes > self.max_bytes and self.finished:
            record = self.records[self._next_to_forget()]
            self._unlist(record)
            del self.finished[record.job_id]
            del self.records[record.job_id]
            self.kept_bytes -= record.size

    def _next_to_forget(self) -> str:
        """While a tenant holds more than its share: the oldest result of the one holding the most.

        Otherwise the oldest finished job of all. A tenant alone is over its share
        as soon as it holds more than it, so it loses only its own oldest results.
        """
        if self.over_share:
            largest = max(self.over_share, key=lambda tenant: self.tenants[tenant].bytes)
            return next(iter(self.tenants[largest].jobs))
        return next(iter(self.finished))

    async def wait_final(self, job_id: str, timeout: float) -> JobRecord | None:
        """The job's record once it is final, or as it is when ``timeout`` runs out."""
        record = self.records.get(job_id)
        if record is None or record.final or timeout <= 0:
            return record
        try:
            await asyncio.wait_for(record.finished.wait(), timeout)
        except TimeoutError:
            pass
        return self.records.get(job_id, record)
