"""The gateway's HTTP API.

``POST /api/jobs``                  submit (JSON, or a multipart form with files: multipart.py); 202 once
                                    RabbitMQ confirmed the job
``GET  /api/jobs/{id}[?wait=S]``    status and result; long-polls up to S seconds
``GET  /api/jobs/{id}/figures/{n}.{svg,png,jpeg,webp,pdf,json,html}``   one figure (n counts from 0), in a
                                    format the job asked for (``.jpg`` too; shared/figure_files.py)
``POST /execute``                   the original demo's call: submit and wait
``GET  /healthz``, ``/readyz``      liveness, readiness
``GET  /metrics``                   Prometheus metrics (shared/metrics.py): submissions, queue depths
``GET  /api/openapi.json``          the OpenAPI 3.1 document (openapi.py), ``/api/docs`` a page for it

Every error is JSON: ``{"error": "...", "details": [...]}``. Every JSON answer is built
through its model in shared/api_models.py, the same models the OpenAPI document is made of.
"""

import asyncio
import functools

import structlog
from aiohttp import hdrs, web
from pydantic import BaseModel

from services.gateway.access import CALLER, ApiKeys, RateLimiter, access_middleware
from services.gateway.multipart import read_form, refuse_cross_site
from services.gateway.openapi import DOCS_PATH, OPENAPI_PATH, PUBLIC_PATHS, PUBLIC_PREFIXES, add_docs_routes
from services.gateway.pages import AssetStore, add_page_routes
from services.gateway.quota import StreamShare
from services.gateway.validation import (
    CHECK_IN_THREAD_BYTES,
    MULTIPART_MEDIA_TYPE,
    InvalidRequest,
    job_from_request,
    media_type,
    parse_job_request,
    request_body_limit,
    require_json,
)
from shared.api_models import ErrorBody, ExecuteResult, JobAccepted, JobView, ServiceIndex
from shared.broker import Broker, BrokerUnavailable
from shared.events import EventFollower
from shared.figure_files import FigureFiles
from shared.health import add_health_routes, when
from shared.http_errors import (
    handle_unexpected_errors,
    http_exception_headers,
    http_exception_message,
    unexpected_errors,
)
from shared.http_input import bounded_float, bounded_int
from shared.jobs import JobIndex, JobRecord
from shared.messages import JobQueued, RenderJob
from shared.metrics import GatewayMetrics
from shared.proxies import TrustedProxies, forwarded_middleware
from shared.settings import Settings
from shared.topology import Names
from shared.vocabulary import FORMAT_BY_EXTENSION

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
BROKER = web.AppKey("broker", Broker)
INDEX = web.AppKey("index", JobIndex)
FOLLOWER = web.AppKey("follower", EventFollower)
FILES = web.AppKey("files", FigureFiles)
KEYS = web.AppKey("keys", ApiKeys)
METRICS = web.AppKey("metrics", GatewayMetrics)
STREAM_SHARE = web.AppKey("stream_share", StreamShare)
API_PREFIXES = ("/api/", "/execute")
SUBMIT_PATHS = ("/api/jobs", "/execute")


def json_body(model: BaseModel, *, status: int = 200, headers: dict | None = None) -> web.Response:
    """A JSON response from one of shared/api_models.py's models (absent optional fields stay absent)."""
    return web.Response(
        body=model.model_dump_json(exclude_unset=True),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def retry_after(request: web.Request) -> dict[str, str]:
    return {"Retry-After": str(request.app[SETTINGS].retry_after_s)}


@web.middleware
async def json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except InvalidRequest as exc:
        return json_body(ErrorBody.model_validate(exc.body()), status=exc.status, headers=exc.headers)
    except BrokerUnavailable as exc:
        return json_body(
            ErrorBody(error=f"the job was not accepted: {exc}; retry later"), status=503, headers=retry_after(request)
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message, headers = http_exception_message(exc), http_exception_headers(exc)
        return json_body(ErrorBody(error=message), status=exc.status, headers=headers)


@web.middleware
async def count_refusals(request: web.Request, handler):
    """Count every refused submission by the answer it got (the outermost middleware: it sees them all)."""
    if request.method != "POST" or request.path not in SUBMIT_PATHS:
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            request.app[METRICS].refused(exc.status)
        raise
    except Exception:
        request.app[METRICS].refused(500)
        raise
    if response.status >= 400:
        request.app[METRICS].refused(response.status)
    return response


def job_urls(settings: Settings, job_id: str) -> dict:
    return {
        "status_url": f"{settings.public_gateway_url}/api/jobs/{job_id}",
        "viewer_url": f"{settings.public_viewer_url}/?job={job_id}",
    }


def job_view(record: JobRecord, settings: Settings, *, include: frozenset[str] = frozenset()) -> dict:
    """The public JSON for one job, with the URLs of its status, viewer page and each figure's files."""
    view = {**record.public_view(include=include), **job_urls(settings, record.job_id)}
    for figure in view.get("figures", []):
        base = f"{settings.public_gateway_url}/api/jobs/{record.job_id}/figures/{figure['index']}"
        for fmt, file in figure["files"].items():
            file["url"] = f"{base}.{fmt}"
        if "svg" in figure["files"]:
            figure["url"] = figure["files"]["svg"]["url"]
    return view


def _include(request: web.Request) -> frozenset[str]:
    """``?include=svg,png,json``: formats to put inline in the job's JSON."""
    asked = frozenset(part for part in request.query.get("include", "").split(",") if part)
    if unknown := asked - {"svg", "png", "json"}:
        raise InvalidRequest(400, f"include can name svg, png and json, not {', '.join(sorted(unknown))}")
    return asked


async def _accept(request: web.Request, job: RenderJob) -> None:
    """Publish the job and wait for the confirm (or raise BrokerUnavailable), then announce it.

    429 first when the tenant's results fill its share of the events stream (quota.py)."""
    request.app[STREAM_SHARE].check(job.tenant, retry_after(request))
    broker, index = request.app[BROKER], request.app[INDEX]
    queued = JobQueued(job_id=job.job_id, code=job.code, submitted_at=job.submitted_at, tenant=job.tenant)
    with structlog.contextvars.bound_contextvars(job_id=job.job_id):
        try:
            await broker.publish_job(job)
        except BrokerUnavailable as exc:
            log.warning("job refused: broker unavailable", error=str(exc))
            raise
        index.apply(queued)
        request.app[METRICS].jobs_accepted.inc()
        log.info(
            "job accepted",
            code_bytes=len(job.code.encode()),
            files=len(job.files),
            figures=len(job.figures or []),
            timeout_s=job.timeout_s,
        )
        try:
            await broker.publish_event(queued)
        except BrokerUnavailable as exc:  # the job itself is safe in its queue
            log.warning("queued event not published", error=str(exc))


async def _checked(size: int, check, *args, **kwargs) -> RenderJob:
    """``check(*args, **kwargs)``, in a thread when the body is large (validation.CHECK_IN_THREAD_BYTES)."""
    if size > CHECK_IN_THREAD_BYTES:
        return await asyncio.to_thread(functools.partial(check, *args, **kwargs))
    return check(*args, **kwargs)


async def _read_job(request: web.Request) -> RenderJob:
    """The job a POST asks for: a JSON body, or a multipart form that is not another site's (multipart.py)."""
    settings = request.app[SETTINGS]
    limit = request_body_limit(settings)
    content_types = request.headers.getall(hdrs.CONTENT_TYPE, [])
    if media_type(content_types) == MULTIPART_MEDIA_TYPE:
        refuse_cross_site(request, settings)  # before anything of it is read
    if request.content_length is not None and request.content_length > limit:
        raise InvalidRequest(
            413,
            f"the request body is {request.content_length} bytes; the limit is {limit} (made of "
            "PLOTFARM_MAX_CODE_BYTES and PLOTFARM_MAX_INPUT_BYTES)",
        )
    if media_type(content_types) == MULTIPART_MEDIA_TYPE:
        data, files = await read_form(request, settings)
        size = request.content_length if request.content_length is not None else CHECK_IN_THREAD_BYTES + 1
        return await _checked(size, job_from_request, data, settings, tenant=request[CALLER].tenant, uploads=files)
    require_json(content_types)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise InvalidRequest(
            413,
            f"the request body is larger than {limit} bytes (made of PLOTFARM_MAX_CODE_BYTES and "
            "PLOTFARM_MAX_INPUT_BYTES)",
        ) from exc
    return await _checked(len(raw), parse_job_request, raw, settings, tenant=request[CALLER].tenant)


async def submit_job(request: web.Request) -> web.Response:
    job = await _read_job(request)
    await _accept(request, job)
    urls = job_urls(request.app[SETTINGS], job.job_id)
    return json_body(JobAccepted(job_id=job.job_id, status="queued", **urls), status=202)


def _wait_seconds(request: web.Request, default: float = 0.0) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return default
    longest = request.app[SETTINGS].max_wait_s
    wait = bounded_float(raw, 0, longest)
    if wait is None:
        raise InvalidRequest(400, f"wait must be a number of seconds between 0 and {longest:g}")
    return wait


def _visible(request: web.Request, record: JobRecord | None) -> JobRecord | None:
    """The record if this caller may see it; another tenant's job (or one whose owner is not known
    yet) is as good as unknown."""
    if record is not None and request.app[KEYS].enabled and record.tenant != request[CALLER].tenant:
        return None
    return record


async def _find(request: web.Request, wait: float = 0.0) -> JobRecord:
    """The caller's job, once final or after ``wait`` seconds; 404 (or 503) otherwise.

    Whose job it is is decided before any wait: waiting on another tenant's job and
    then saying 404 would tell its existence (and when it finished) by the time taken.
    So another tenant's job answers exactly as an unknown id does, and at once.
    """
    job_id = request.match_info["job_id"]
    record = _visible(request, request.app[INDEX].get(job_id))
    if record is not None and wait > 0:
        record = _visible(request, await request.app[INDEX].wait_final(job_id, wait))
    if record is None:
        if not request.app[FOLLOWER].caught_up.is_set():
            raise web.HTTPServiceUnavailable(
                text="the gateway is still reading job history; retry shortly", headers=retry_after(request)
            )
        raise web.HTTPNotFound(text=f"no job {job_id} (unknown, or older than the gateway keeps)")
    return record


async def get_job(request: web.Request) -> web.Response:
    include, wait = _include(request), _wait_seconds(request)  # both checked before any wait
    record = await _find(request, wait)
    return json_body(JobView.model_validate(job_view(record, request.app[SETTINGS], include=include)))


# A figure file's extension: every format's, and the other names of some (jpg), longest first.
FIGURE_EXTENSIONS = "|".join(sorted(FORMAT_BY_EXTENSION, key=lambda ext: (-len(ext), ext)))


async def get_figure(request: web.Request) -> web.Response:
    record = await _find(request)
    if record.result is None:
        raise web.HTTPNotFound(text=f"job {record.job_id} is {record.status}; it has no figures yet")
    count = len(record.result.figures)
    index = bounded_int(request.match_info["index"], 0, count - 1)
    if index is None:
        raise web.HTTPNotFound(text=f"job {record.job_id} has {count} figure(s), numbered from 0; no such figure")
    figure = record.result.figures[index]
    return await asyncio.to_thread(
        request.app[FILES].response, figure, request.match_info["format"], f"{record.job_id}-{index}"
    )


async def execute(request: web.Request) -> web.Response:
    """The original demo's synchronous call: ``{code}`` in, the SVG (and PNG, if asked) out (202 if still running)."""
    settings = request.app[SETTINGS]
    job = await _read_job(request)
    await _accept(request, job)
    record = await request.app[INDEX].wait_final(job.job_id, settings.max_wait_s)
    view = job_view(record, settings, include=frozenset({"svg", "png"}))
    if not record.final:
        return json_body(JobView.model_validate(view), status=202)
    first = view["figures"][0] if view["figures"] else {}
    view["svg"], view["png"] = first.get("svg"), first.get("png")
    return json_body(ExecuteResult.model_validate(view))


async def index_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return json_body(
        ServiceIndex(
            service="plotfarm gateway",
            submit=f"POST {settings.public_gateway_url}/api/jobs",
            viewer=settings.public_viewer_url,
            client_side_page=f"{settings.public_gateway_url}/client-plot",
            openapi=f"{settings.public_gateway_url}{OPENAPI_PATH}",
            api_docs=f"{settings.public_gateway_url}{DOCS_PATH}",
        )
    )


def create_app(
    settings: Settings,
    broker: Broker,
    index: JobIndex,
    follower: EventFollower,
    metrics: GatewayMetrics | None = None,
    stream_share: StreamShare | None = None,
) -> web.Application:
    keys = ApiKeys.from_settings(settings)
    limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    access = access_middleware(keys, limiter, API_PREFIXES, PUBLIC_PATHS, PUBLIC_PREFIXES)
    proxies = TrustedProxies(settings.trusted_proxies)
    app = web.Application(
        # First: every later step sees the client's address and scheme (shared/proxies.py).
        middlewares=[forwarded_middleware(proxies), count_refusals, unexpected_errors, json_errors, access],
        client_max_size=request_body_limit(settings),
    )
    handle_unexpected_errors(app)
    app[SETTINGS], app[BROKER], app[INDEX], app[FOLLOWER], app[KEYS] = settings, broker, index, follower, keys
    app[METRICS] = metrics = metrics or GatewayMetrics()
    app[STREAM_SHARE] = stream_share or StreamShare(settings)  # fed by the follower (__main__.py)
    metrics.watch_queues(broker, Names(settings.namespace))
    metrics.watch_follower(follower)
    assets = AssetStore(settings)
    app[FILES] = FigureFiles(assets)
    app.router.add_get("/", index_page)
    app.router.add_post("/api/jobs", submit_job)
    app.router.add_get("/api/jobs/{job_id}", get_job)
    app.router.add_get(rf"/api/jobs/{{job_id}}/figures/{{index:\d+}}.{{format:{FIGURE_EXTENSIONS}}}", get_figure)
    app.router.add_post("/execute", execute)
    add_page_routes(app, settings, assets)
    add_docs_routes(app, settings, keys_enabled=keys.enabled)
    add_health_routes(
        app,
        {
            "broker": broker.not_ready_because,
            "events": follower.not_ready_because,
            "history": when(follower.caught_up.is_set, "still reading the events stream's history"),
        },
    )
    metrics.add_route(app)
    return app
