"""Turning an HTTP request body into a :class:`RenderJob`, or a clear 4xx.

Kept apart from the handlers so the rules can be unit-tested without a broker.
"""

import base64
import binascii
import json
import keyword
from dataclasses import dataclass

from pydantic import ValidationError

from shared.http_input import MAX_DIGITS
from shared.messages import RenderJob, new_job_id, utcnow
from shared.settings import Settings
from shared.vocabulary import MAX_FILE_NAME_BYTES, Format, JobRequest, job_request_model


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
# A body this large takes long enough to check (about 10 ms a MB: JSON, base64, the model) to stall
# every other request on the gateway's loop, so it is checked in a thread.
CHECK_IN_THREAD_BYTES = 256 * 1024
MULTIPART_MEDIA_TYPE = "multipart/form-data"
ACCEPT_POST = f"{JSON_MEDIA_TYPE}, {MULTIPART_MEDIA_TYPE}"


def media_type(content_types: list[str]) -> str | None:
    """The one media type a request's ``Content-Type`` names, lower case, without parameters (None: not one)."""
    return content_types[0].split(";", 1)[0].strip(" \t").lower() if len(content_types) == 1 else None


def require_json(content_types: list[str]) -> None:
    """A job is JSON, said so by one ``Content-Type: application/json`` (any parameters, any case); else 415.

    Why so strict: a page on another site can make a browser post a form, or a
    ``text/plain`` body, to a gateway without keys, with no CORS preflight; it
    cannot send ``application/json`` without one, which this gateway never grants.
    ``multipart/form-data`` is a form a browser posts anywhere, so the gateway takes it
    apart, and only from requests that are not cross-site (services/gateway/multipart.py).
    """
    if media_type(content_types) != JSON_MEDIA_TYPE:
        sent = "none" if not content_types else ", ".join(repr(value[:100]) for value in content_types)
        raise InvalidRequest(
            415,
            f"the body must be JSON, sent with Content-Type: {JSON_MEDIA_TYPE}, or a {MULTIPART_MEDIA_TYPE} form "
            f"(this request's Content-Type: {sent})",
            headers={"Accept-Post": ACCEPT_POST},
        )


def request_body_limit(settings: Settings) -> int:
    """Largest body worth reading: the largest valid job, with every input sent as base64.

    That is the code, JSON-escaped at worst (\\uXXXX: 6 bytes a byte), plus ``max_input_bytes``
    as base64 (4 bytes for 3), plus each file's name escaped at worst (no control characters in a
    name: 3 bytes a byte, as \\u00e9 for the 2 bytes of é) and its JSON around it, plus room for
    the other fields. A figure job's figures count toward ``max_input_bytes`` too,
    so a figure of that size as compact JSON fits. Text that needs many escapes may not: such a
    file fits as base64 (or in a multipart form, where a file's bytes travel as they are).
    """
    base64_inputs = 4 * -(-settings.max_input_bytes // 3)
    names = settings.max_input_files * (MAX_FILE_NAME_BYTES * 3 + 32)
    return settings.max_code_bytes * 6 + base64_inputs + names + 16 * 1024


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


# What a request that fails its model's check is told: (field, error type) or, for a model's own
# validators (error type value_error), (field, error type, the validator's reason). The model says
# the same in its JSON Schema; these are the sentences people asked for. "files.*" is any one file.
FRIENDLIER = {
    ("code", "string_pattern_mismatch"): ("code is empty", "must contain Python code"),
    ("timeout_s", "less_than_equal"): ("timeout_s is too long", "must be at most {le}"),
    ("", "value_error", "give exactly one of code or figure"): (
        "give code or figure",
        "send exactly one of `code` (Python to run) and `figure` (a Plotly figure's JSON to draw)",
    ),
    ("", "value_error", "files and variables are for code; a figure job runs no Python"): (
        "files and variables need code",
        "a figure job runs no Python, so it takes no `files` or `variables`",
    ),
    ("files", "too_long"): ("too many files", "at most {max_length} files (PLOTFARM_MAX_INPUT_FILES)"),
    ("files.*", "value_error", "give exactly one of text or base64"): (
        "file {name} needs its content",
        "give exactly one of `text` and `base64`",
    ),
    ("files.*.*", "extra_forbidden"): (
        "file {name} has an unknown field",
        'a file is `{{"text": ...}}` or `{{"base64": ...}}`',
    ),
    ("files.*.[key]", "string_pattern_mismatch"): (
        "invalid file name {name}",
        "a file name is one plain name: no `/` or `\\`, no control characters, not only dots (`.`, `..`)",
    ),
    ("variables.*.[key]", "string_pattern_mismatch"): (
        "invalid variable name {name}",
        "a variable name is a Python identifier (ASCII) that does not start with `__`",
    ),
}


def _quoted(name: object) -> str:
    return repr(str(name)[:100])


def _friendlier(err: dict) -> tuple[str, str, str] | None:
    """``(message, field, detail)`` for one of pydantic's errors, when FRIENDLIER has words for it."""
    loc = [str(part) for part in err["loc"]]
    field = ".".join(part for part in loc if part != "[key]")  # a name's error: the field is the name's
    keys = [".".join(loc)]
    if loc and loc[0] in ("files", "variables") and len(loc) >= 2:
        keys.append(".".join([loc[0], "*", *loc[2:]]))
        if len(loc) == 3 and loc[2] != "[key]":
            keys.append(f"{loc[0]}.*.*")
    reason = str(err.get("ctx", {}).get("error", "")) if err["type"] == "value_error" else None
    for key in keys:
        words = FRIENDLIER.get((key, err["type"], reason) if reason is not None else (key, err["type"]))
        if words:
            ctx = {name: value for name, value in err.get("ctx", {}).items() if name != "error"}
            name = _quoted(loc[1]) if len(loc) >= 2 else ""
            message, detail = words
            return message.format(name=name, **ctx), field or "body", detail.format(name=name, **ctx)
    return None


def _invalid(exc: ValidationError) -> InvalidRequest:
    """A 400 for a model's refusal: in FRIENDLIER's words where it has some (the first error's as the
    message), pydantic's otherwise; ``details`` names each field."""
    errors = exc.errors(include_url=False)
    friendly = [_friendlier(err) for err in errors]
    details = [
        {"field": words[1], "message": words[2]} if words else detail
        for words, detail in zip(friendly, _field_errors(exc), strict=True)
    ]
    message = friendly[0][0] if friendly[0] else "invalid job request"
    return InvalidRequest(400, message, details)


def _invalid_field(field: str, message: str, detail: str, status: int = 400) -> InvalidRequest:
    return InvalidRequest(status, message, [{"field": field, "message": detail}])


def parse_job_request(raw: bytes, settings: Settings, *, tenant: str | None = None) -> RenderJob:
    """Validate a ``POST /api/jobs`` JSON body with the model the OpenAPI document describes, and make the job."""
    return job_from_request(parse_json_body(raw), settings, tenant=tenant)


def job_from_request(
    data: object, settings: Settings, *, tenant: str | None = None, uploads: dict[str, bytes] | None = None
) -> RenderJob:
    """The job a request's JSON object asks for; ``uploads`` are files that came as a form's parts.

    The model checks the shape (shared/vocabulary.py); what JSON Schema cannot say is checked
    here: sizes in bytes (code, file names, inputs, figures), base64 that decodes, Python keywords.
    """
    if not isinstance(data, dict):
        raise InvalidRequest(400, 'the body must be a JSON object such as {"code": "..."}')
    try:
        request = job_request_model(settings).model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    except RecursionError:  # a field nested deeper than the validator recurses
        raise InvalidRequest(400, "invalid job request: a field is nested too deeply") from None
    figures = _figures(request.figure, settings)
    if request.code is not None:
        if not request.code.strip():  # what JSON Schema's \S means; the model's regex knows fewer spaces (\x1c)
            raise _invalid_field("code", *FRIENDLIER[("code", "string_pattern_mismatch")])
        size = len(request.code.encode("utf-8"))
        if size > settings.max_code_bytes:
            raise InvalidRequest(
                413, f"code is {size} bytes; the limit is {settings.max_code_bytes} (PLOTFARM_MAX_CODE_BYTES)"
            )
    files = _files(request.files or {}, uploads or {}, settings)
    variables = request.variables or {}
    _check_variable_names(variables)
    _check_input_bytes(files, variables, settings)
    timeout_s = request.timeout_s if request.timeout_s is not None else settings.default_timeout_s
    formats = list(dict.fromkeys(request.formats or [Format.SVG.value]))  # in order, each once
    return RenderJob(
        job_id=new_job_id(),
        code=request.code or "",
        figures=figures,
        files={name: base64.b64encode(content).decode("ascii") for name, content in files.items()},
        variables=variables,
        width=request.width or settings.default_width,
        height=request.height or settings.default_height,
        timeout_s=float(timeout_s),
        submitted_at=utcnow(),
        tenant=tenant,
        formats=formats,
        scale=float(request.scale or 1),
    )


def check_file_name(name: str) -> None:
    """A 400 naming the file unless ``name`` is one plain name of at most MAX_FILE_NAME_BYTES (the model's
    pattern, for names that did not come through it: a form's parts)."""
    try:
        JobRequest.model_validate({"code": "x", "files": {name: {"text": ""}}})
    except ValidationError as exc:
        raise _invalid(exc) from None
    size = len(name.encode("utf-8"))
    if size > MAX_FILE_NAME_BYTES:
        raise _invalid_field(
            f"files.{name[:100]}",
            f"file name {_quoted(name)} is too long",
            f"a file name is at most {MAX_FILE_NAME_BYTES} bytes of UTF-8; this one is {size}",
        )


def _decode_base64(name: str, text: str) -> bytes:
    """Strict base64 (RFC 4648, standard alphabet, padded, nothing else): what was meant, or a 400."""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise _invalid_field(
            f"files.{name[:100]}.base64",
            f"file {_quoted(name)} is not valid base64",
            f"base64 of the standard alphabet (A-Z a-z 0-9 + /), padded with = and with no spaces or line "
            f"breaks ({exc})",
        ) from None


def _files(sent: dict, uploads: dict[str, bytes], settings: Settings) -> dict[str, bytes]:
    """Every input file's bytes by name: the JSON's (text as UTF-8, base64 decoded) and the form's."""
    files: dict[str, bytes] = {}
    for name, content in sent.items():
        check_file_name(name)
        files[name] = content.text.encode("utf-8") if content.text is not None else _decode_base64(name, content.base64)
    for name, content in uploads.items():
        check_file_name(name)
        if name in files:
            raise _invalid_field(
                f"files.{name[:100]}", f"file {_quoted(name)} is sent twice", "each file name may appear once"
            )
        files[name] = content
    if len(files) > settings.max_input_files:
        raise _invalid_field(
            "files", "too many files", f"at most {settings.max_input_files} files (PLOTFARM_MAX_INPUT_FILES)"
        )
    return files


def _check_variable_names(variables: dict) -> None:
    for name in variables:
        if keyword.iskeyword(name):
            raise _invalid_field(
                f"variables.{name}",
                f"invalid variable name {_quoted(name)}",
                f"{name} is a Python keyword, which cannot name a variable",
            )


def _check_input_bytes(files: dict[str, bytes], variables: dict, settings: Settings) -> None:
    total = sum(map(len, files.values())) + (len(_compact_json(variables)) if variables else 0)
    if total > settings.max_input_bytes:
        raise InvalidRequest(
            413,
            f"the input files and variables are {total} bytes; the limit is {settings.max_input_bytes} "
            "(PLOTFARM_MAX_INPUT_BYTES)",
        )


def _compact_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _figures(figure: dict | list | None, settings: Settings) -> list[dict] | None:
    """A figure job's figures, each checked against the limits a figure a job's code made meets."""
    if figure is None:
        return None
    figures = figure if isinstance(figure, list) else [figure]
    if not figures:
        raise _invalid_field("figure", "no figure", "give a figure, or a list of at least one")
    if len(figures) > settings.max_figures:
        raise _invalid_field(
            "figure", "too many figures", f"at most {settings.max_figures} figures (PLOTFARM_MAX_FIGURES)"
        )
    total = 0
    for n, one in enumerate(figures):
        size = len(_compact_json(one))
        total += size
        if size > settings.max_figure_bytes:
            raise InvalidRequest(
                413,
                f"figure {n} is {size} bytes of JSON; the limit is {settings.max_figure_bytes} "
                "(PLOTFARM_MAX_FIGURE_BYTES)",
            )
        if _deeper_than(one, settings.max_figure_depth):
            raise _invalid_field(
                f"figure.{n}" if isinstance(figure, list) else "figure",
                f"figure {n} is nested too deeply",
                f"at most {settings.max_figure_depth} levels of arrays and objects (PLOTFARM_MAX_FIGURE_DEPTH)",
            )
    if total > settings.max_input_bytes:  # they travel inside the job's message, as files do
        raise InvalidRequest(
            413,
            f"the figures are {total} bytes of JSON; the limit is {settings.max_input_bytes} "
            "(PLOTFARM_MAX_INPUT_BYTES)",
        )
    return figures


def _deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
