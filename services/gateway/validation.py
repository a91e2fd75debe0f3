"""Turning an HTTP request body into a :class:`RenderJob`, or a clear 4xx.

Kept apart from the handlers so the rules can be unit-tested without a broker.
"""

import json
from dataclasses import dataclass

from pydantic import ValidationError

from shared.messages import JobRequest, RenderJob, new_job_id, utcnow
from shared.settings import Settings


@dataclass
class InvalidRequest(Exception):
    status: int
    message: str
    details: list | None = None

    def body(self) -> dict:
        body = {"error": self.message}
        if self.details:
            body["details"] = self.details
        return body


def request_body_limit(settings: Settings) -> int:
    """Largest body worth reading: the code limit, JSON-escaped at worst (\\uXXXX), plus room."""
    return settings.max_code_bytes * 6 + 16 * 1024


def _field_errors(exc: ValidationError) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


def _json_number(text: str) -> float | int:
    """A JSON number with a fraction: ``298.0`` is the integer 298, as JSON Schema (and our OpenAPI) counts it."""
    number = float(text)
    return int(number) if number.is_integer() else number


def parse_job_request(raw: bytes, settings: Settings, *, tenant: str | None = None) -> RenderJob:
    """Validate a ``POST /api/jobs`` body and make the job it asks for."""
    try:
        data = json.loads(raw, parse_float=_json_number)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequest(400, 'the body must be a JSON object such as {"code": "..."}')
    try:  # JSON's \ud800 escapes decode to lone surrogates, which are no text: refuse them here
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(400, f"the body is not valid JSON text: a lone surrogate escape ({exc.reason})") from exc
    try:
        request = JobRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(400, "invalid job request", _field_errors(exc)) from exc
    if not request.code.strip():
        raise InvalidRequest(400, "code is empty", [{"field": "code", "message": "must contain Python code"}])
    size = len(request.code.encode("utf-8"))
    if size > settings.max_code_bytes:
        raise InvalidRequest(413, f"code is {size} bytes; the limit is {settings.max_code_bytes}")
    timeout_s = request.timeout_s if request.timeout_s is not None else settings.default_timeout_s
    if timeout_s > settings.max_timeout_s:
        raise InvalidRequest(
            400,
            "timeout_s is too long",
            [{"field": "timeout_s", "message": f"must be at most {settings.max_timeout_s}"}],
        )
    formats = list(dict.fromkeys(request.formats or ["svg"]))  # in order, each once
    return RenderJob(
        job_id=new_job_id(),
        code=request.code,
        width=request.width or settings.default_width,
        height=request.height or settings.default_height,
        timeout_s=float(timeout_s),
        submitted_at=utcnow(),
        tenant=tenant,
        formats=formats,
        scale=float(request.scale or 1),
    )
