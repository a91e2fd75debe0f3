"""Turning an HTTP request body into a :class:`RenderJob`, or a clear 4xx.

Kept apart from the handlers so the rules can be unit-tested without a broker.
"""

import json
from dataclasses import dataclass

from pydantic import ValidationError

from shared.http_input import MAX_DIGITS
from shared.messages import RenderJob, new_job_id, utcnow
from shared.settings import Settings
from shared.vocabulary import Format, job_request_model


@dataclass
class InvalidRequest(Exception):
    status: int
    message: str
    details: list | None = None
    headers: dict[str, str] | None = None

    def body(self) -> dict:
        body = {"error": self.message}
        if self.details:
            body["details"] = self.details
        return body


JSON_MEDIA_TYPE = "application/json"


def require_json(content_types: list[str]) -> None:
    """A job is JSON, said so by one ``Content-Type: application/json`` (any parameters, any case); else 415.

    Why so strict: a page on another site can make a browser post a form, or a
    ``text/plain`` body, to a gateway without keys, with no CORS preflight; it
    cannot send ``application/json`` without one, which this gateway never grants.
    """
    media_type = content_types[0].split(";", 1)[0].strip(" \t").lower() if len(content_types) == 1 else None
    if media_type != JSON_MEDIA_TYPE:
        sent = "none" if not content_types else ", ".join(repr(value[:100]) for value in content_types)
        raise InvalidRequest(
            415,
            f"the body must be JSON, sent with Content-Type: {JSON_MEDIA_TYPE} (this request's Content-Type: {sent})",
            headers={"Accept-Post": JSON_MEDIA_TYPE},
        )


def request_body_limit(settings: Settings) -> int:
    """Largest body worth reading: the code limit, JSON-escaped at worst (\\uXXXX), plus room."""
    return max(settings.max_code_bytes * 6, settings.max_figure_bytes) + 16 * 1024  # TEMPORARY (wip-figures)


def _field_errors(exc: ValidationError) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


class _NotJson(ValueError):
    """What the hooks below raise: a reason the body is not JSON we take."""


def _json_number(text: str) -> float | int:
    """A JSON number with a fraction: ``298.0`` is the integer 298, as JSON Schema (and our OpenAPI) counts it."""
    number = float(text)  # never raises: past float's range it is inf, which the models refuse
    return int(number) if number.is_integer() else number


def _json_integer(text: str) -> int:
    """A JSON integer of a sane length (Python's int() refuses more than 4,300 digits with a ValueError)."""
    if len(text) > MAX_DIGITS:
        raise _NotJson(f"a number with more than {MAX_DIGITS} digits")
    return int(text)


def _json_constant(name: str):
    raise _NotJson(f"{name} is not a JSON value")


def _json_object(pairs: list[tuple[str, object]]) -> dict:
    """An object whose names are unique: with a name twice, parsers disagree on which value counts."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        raise _NotJson(f"the name {twice[:100]!r} appears more than once in an object")
    return obj


def parse_json_body(raw: bytes):
    """The JSON value of a request body, or a 400 that says why not. Every body we parse comes here.

    Whatever parsing a hostile body raises is a 400, never a 500: invalid UTF-8
    (UnicodeDecodeError), invalid JSON and numbers beyond reason (ValueError),
    nesting deeper than Python recurses (RecursionError), lone surrogate escapes
    (``\ud800``, which are no text), and a body that does not fit in memory.
    """
    try:
        text = raw.decode("utf-8-sig")  # JSON is UTF-8 (RFC 8259); a byte order mark is tolerated
        data = json.loads(
            text,
            parse_float=_json_number,
            parse_int=_json_integer,
            parse_constant=_json_constant,
            object_pairs_hook=_json_object,
        )
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates fail to encode
    except UnicodeDecodeError as exc:
        raise InvalidRequest(400, f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except UnicodeEncodeError as exc:
        raise InvalidRequest(400, f"the body is not valid JSON text: a lone surrogate escape ({exc.reason})") from None
    except RecursionError:
        raise InvalidRequest(400, "the body is not valid JSON for this API: it is nested too deeply") from None
    except MemoryError:
        raise InvalidRequest(400, "the body is not valid JSON for this API: it is too large to parse") from None
    except ValueError as exc:  # json.JSONDecodeError is one
        raise InvalidRequest(400, f"the body is not valid JSON: {str(exc)[:200]}") from None
    return data


# What a request that fails its model's check on these fields is told (the model says the same in
# its JSON Schema; these are the sentences people asked for).
FRIENDLIER = {
    ("code", "string_pattern_mismatch"): ("code is empty", "must contain Python code"),
    ("timeout_s", "less_than_equal"): ("timeout_s is too long", "must be at most {le}"),
}


def parse_job_request(raw: bytes, settings: Settings, *, tenant: str | None = None) -> RenderJob:
    """Validate a ``POST /api/jobs`` body with the model the OpenAPI document describes, and make the job."""
    data = parse_json_body(raw)
    if not isinstance(data, dict):
        raise InvalidRequest(400, 'the body must be a JSON object such as {"code": "..."}')
    try:
        request = job_request_model(settings).model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    except RecursionError:  # a field nested deeper than the validator recurses
        raise InvalidRequest(400, "invalid job request: a field is nested too deeply") from None
    # TEMPORARY (wip-figures, until the gateway's own figure support is merged): a figure job.
    figures = None
    if request.figure is not None:
        figures = request.figure if isinstance(request.figure, list) else [request.figure]
        request.code = ""
    elif not request.code.strip():  # what JSON Schema's \S means; the model's regex knows fewer spaces (\x1c)
        raise _invalid_field("code", *FRIENDLIER[("code", "string_pattern_mismatch")])
    size = len(request.code.encode("utf-8"))
    if size > settings.max_code_bytes:
        raise InvalidRequest(413, f"code is {size} bytes; the limit is {settings.max_code_bytes}")
    timeout_s = request.timeout_s if request.timeout_s is not None else settings.default_timeout_s
    formats = list(dict.fromkeys(request.formats or [Format.SVG.value]))  # in order, each once
    return RenderJob(
        job_id=new_job_id(),
        code=request.code,
        figures=figures,
        width=request.width or settings.default_width,
        height=request.height or settings.default_height,
        timeout_s=float(timeout_s),
        submitted_at=utcnow(),
        tenant=tenant,
        formats=formats,
        scale=float(request.scale or 1),
    )


def _invalid(exc: ValidationError) -> InvalidRequest:
    errors = exc.errors(include_url=False)
    if len(errors) == 1 and (friendlier := FRIENDLIER.get((".".join(map(str, errors[0]["loc"])), errors[0]["type"]))):
        message, detail = friendlier
        return _invalid_field(str(errors[0]["loc"][0]), message, detail.format(**errors[0].get("ctx", {})))
    return InvalidRequest(400, "invalid job request", _field_errors(exc))


def _invalid_field(field: str, message: str, detail: str) -> InvalidRequest:
    return InvalidRequest(400, message, [{"field": field, "message": detail}])
