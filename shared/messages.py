"""The messages plotfarm's services exchange, defined once.

Two kinds travel through RabbitMQ:

* :class:`RenderJob` on the jobs queue, from the gateway to one renderer;
* events on the events stream, read by every gateway and viewer:
  :class:`JobQueued` (gateway accepted it), :class:`JobStarted` (a renderer
  began it) and :class:`RenderResult` (final: ``done`` or ``failed``).

:class:`JobRequest` (shared/vocabulary.py) is what a client may POST; it is
validated strictly so a typo in a field name is an error rather than a
silently ignored option.
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator

from shared.vocabulary import Format, FormatName


def new_job_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def ms_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() * 1000, 1)


class RenderJob(BaseModel):
    """One unit of work on the jobs queue."""

    job_id: str
    code: str = Field("", description="Python code to run; empty when the job brings figures instead.")
    figures: list[dict] | None = Field(
        None, description="Figures to draw as they are, with no Python (a figure job); None for a code job."
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Input files for the code, name -> bytes as base64 (checked by the gateway: names, sizes).",
    )
    variables: dict[str, Any] = Field(
        default_factory=dict, description="JSON values bound as the code's globals before it runs."
    )
    width: int
    height: int
    timeout_s: float
    submitted_at: datetime
    tenant: str | None = None
    formats: list[FormatName] = Field(default_factory=lambda: [Format.SVG.value])
    scale: float = 1.0


class Figure(BaseModel):
    """One figure in the formats its job asked for (HTML is made from ``spec`` when asked for)."""

    svg: str | None = Field(None, description="The SVG document.")
    png: str | None = Field(None, description="The PNG image, base64.")
    jpeg: str | None = Field(None, description="The JPEG image, base64.")
    webp: str | None = Field(None, description="The WebP image, base64.")
    pdf: str | None = Field(None, description="The vector PDF, base64.")
    spec: dict | None = Field(None, description="The figure as plotly.js received it: data, layout, frames.")


class JobError(BaseModel):
    type: str
    message: str
    traceback: str = ""


class Timings(BaseModel):
    """Milliseconds. ``total_ms`` runs from the gateway's accept to the result.

    ``queued_ms``: accepted -> a renderer took it; ``wait_ms``: waiting for a
    fresh interpreter; ``load_ms``: loading packages the code imports that the
    interpreter did not have yet (scipy, ...); ``run_ms``: the code itself;
    ``svg_ms``: figures to SVG.
    """

    queued_ms: float = 0.0
    wait_ms: float = 0.0
    load_ms: float = 0.0
    run_ms: float = 0.0
    svg_ms: float = 0.0
    total_ms: float = 0.0


class JobQueued(BaseModel):
    kind: Literal["queued"] = "queued"
    job_id: str
    code: str
    submitted_at: datetime
    tenant: str | None = None


class JobStarted(BaseModel):
    kind: Literal["running"] = "running"
    job_id: str
    renderer_id: str
    attempt: int
    started_at: datetime


class RenderResult(BaseModel):
    """The final word on a job. Published persistently; the first one per job wins."""

    kind: Literal["result"] = "result"
    job_id: str
    status: Literal["done", "failed"]
    code: str = ""
    figures: list[Figure] = Field(default_factory=list, description="The figures, in the order shown.")
    stdout: str = ""
    stderr: str = ""
    error: JobError | None = None
    packages: list[str] = Field(default_factory=list, description="Packages loaded for this job's imports.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What came out differently than the code asked: tiles not loaded offline, WebGL traces "
        "as raster images in the SVG, fonts substituted.",
    )
    timings: Timings = Field(default_factory=Timings)
    renderer_id: str = ""
    attempt: int = 1
    submitted_at: datetime | None = None
    finished_at: datetime = Field(default_factory=utcnow)
    tenant: str | None = None

    @field_validator("figures", mode="before")
    @classmethod
    def _svg_strings_from_older_events(cls, figures):
        """Results written before figures had formats carried SVG strings; the stream still holds some."""
        return [{"svg": figure} if isinstance(figure, str) else figure for figure in figures or []]

    @classmethod
    def failure(cls, job: RenderJob, error: JobError, **fields) -> "RenderResult":
        """A failed result for ``job`` that never reached (or left) the interpreter."""
        finished = utcnow()
        timings = fields.pop("timings", None) or Timings(total_ms=ms_between(job.submitted_at, finished))
        return cls(
            job_id=job.job_id,
            status="failed",
            code=job.code,
            error=error,
            submitted_at=job.submitted_at,
            finished_at=finished,
            tenant=job.tenant,
            timings=timings,
            **fields,
        )


JobEvent = Annotated[JobQueued | JobStarted | RenderResult, Field(discriminator="kind")]
job_event_adapter: TypeAdapter[JobEvent] = TypeAdapter(JobEvent)


def parse_event(body: bytes) -> JobEvent:
    return job_event_adapter.validate_json(body)
