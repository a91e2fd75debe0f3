"""What the gateway's HTTP API answers, as pydantic models: the one definition of each response.

The gateway builds its JSON responses through these models (``services/gateway/app.py``,
:func:`json_body`), and its OpenAPI document (``services/gateway/openapi.py``) is generated
from them and from :class:`shared.messages.JobRequest`, so the document cannot drift from
what the handlers send. Every model forbids fields it does not declare: a field added to a
response without being added here fails the unit tests (and the gateway's response) rather
than going undocumented.

Fields a response carries only sometimes (a job's output, once it is final; a figure's
inline SVG, when ``include`` asked for it) are optional and left out when absent, exactly as
before these models existed: handlers serialise with ``exclude_unset``.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.messages import JobError, Timings
from shared.vocabulary import JobStatus

# Timestamps are kept as the ISO 8601 text the gateway has always sent (``+00:00``, not ``Z``).
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(ApiModel):
    field: str = Field(description="The field at fault, dotted (`formats.0`), or `body`.")
    message: str


class ErrorBody(ApiModel):
    """Every error the API answers with, whatever its status."""

    error: str = Field(description="What went wrong, in a sentence.")
    details: list[ErrorDetail] | None = Field(
        None, description="Per-field problems, for a request that failed validation (400)."
    )


class JobAccepted(ApiModel):
    """``202``: the job is in RabbitMQ's jobs queue (the broker confirmed it)."""

    job_id: str = Field(description="32 hexadecimal digits.")
    status: Literal["queued"]
    status_url: str = Field(description="`GET` it for the job's status and result.")
    viewer_url: str = Field(description="The job in the live viewer.")


class FigureFile(ApiModel):
    url: str = Field(description="`GET` it for the file (`figures/{n}.{format}`).")
    bytes: int | None = Field(None, ge=0, description="Its size; absent for html, which is made on request.")


class FigureFiles(ApiModel):
    """The formats this figure can be fetched in: those the job asked for (html comes with json)."""

    svg: FigureFile | None = None
    png: FigureFile | None = None
    jpeg: FigureFile | None = None
    webp: FigureFile | None = None
    pdf: FigureFile | None = None
    json_: FigureFile | None = Field(None, alias="json")
    html: FigureFile | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class FigureView(ApiModel):
    index: int = Field(ge=0, description="Its position among the job's figures, from 0.")
    files: FigureFiles
    url: str | None = Field(None, description="The SVG's URL (when the job asked for SVG).")
    bytes: int | None = Field(None, ge=0, description="The SVG's size (when the job asked for SVG).")
    svg: str | None = Field(None, description="The SVG itself, with `?include=svg`.")
    png: str | None = Field(None, description="The PNG, base64, with `?include=png`.")
    spec: dict[str, Any] | None = Field(
        None, description="The figure as plotly.js received it (`data`, `layout`, `frames`), with `?include=json`."
    )


class JobView(ApiModel):
    """A job's status and, once it is final, its result."""

    job_id: str
    status: JobStatus
    submitted_at: Timestamp | None = Field(description="When the gateway accepted it.")
    renderer_id: str | None = Field(description="The renderer that runs or ran it.")
    attempt: int | None = Field(description="Which delivery of the job this is (1 unless a renderer died).")
    status_url: str
    viewer_url: str
    # Present once the job is final (done or failed):
    finished_at: Timestamp | None = None
    timings: Timings | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: JobError | None = Field(None, description="Why it failed: null when it is done.")
    packages: list[str] | None = Field(None, description="Packages loaded on demand for the code's imports.")
    warnings: list[str] | None = Field(
        None, description="What came out differently than asked: tiles not loaded offline, WebGL as images, fonts."
    )
    figures: list[FigureView] | None = Field(None, description="The figures, in the order the code showed them.")


class ExecuteResult(JobView):
    """``POST /execute``'s answer: the job, with the first figure's SVG and PNG (base64) on top."""

    svg: str | None = Field(None, description="The first figure's SVG; null when there is none.")
    png: str | None = Field(None, description="The first figure's PNG, base64; null unless the job asked for png.")


class Liveness(ApiModel):
    status: Literal["alive"]


class Readiness(ApiModel):
    ready: bool
    checks: dict[str, str] = Field(description='Each check and "ok", or why it fails.')


class ServiceIndex(ApiModel):
    service: str
    submit: str
    viewer: str
    client_side_page: str
    openapi: str = Field(description="This API's OpenAPI document.")
    api_docs: str = Field(description="The same, as a page to read and try.")
