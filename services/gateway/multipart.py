"""A job as a ``multipart/form-data`` form: one part ``code`` (text) or ``job`` (JSON), the others files.

Why a form at all: a 15 MB CSV sent as JSON must be escaped or base64'd (a third more), and
``curl -F code=@plot.py -F data=@sales.csv`` is what people type. Each file part is named by its
``filename`` (any field name); the ``job`` part is the same JSON object as a JSON body, where
``code`` may be left out when a ``code`` part brings it.

Why only from requests that are not cross-site: JSON bodies are safe from cross-site request
forgery because a page on another site cannot make a browser send ``application/json`` without
a CORS preflight, which this gateway never grants (validation.require_json). A form is exactly
what any page can make a visitor's browser post anywhere, with no preflight: a gateway without
keys (or one on the visitor's private network) would run whatever that page chose. So a form is
taken only when the request says it is not a cross-site browser request: every current browser
sends ``Sec-Fetch-Site`` (``cross-site``/``same-site`` from another page) and ``Origin`` on a
form POST; programs (curl, client.py, requests) send neither. A form from another page is
refused with 403 before any of it is read; one from the gateway's own pages (the client page)
is taken.

Read as a stream with limits, never a whole unbounded part in memory: the body as a whole is
held to request_body_limit, ``code`` to ``max_code_bytes``, the files together to
``max_input_bytes``, and the number of parts to the number of files allowed (plus two).
"""

import asyncio

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from services.gateway.validation import (
    CHECK_IN_THREAD_BYTES,
    InvalidRequest,
    check_file_name,
    parse_json_body,
    request_body_limit,
)
from shared.settings import Settings

CHUNK = 64 * 1024
# What Sec-Fetch-Site says of a request that is not another site's: the gateway's own page, or the
# user's own doing (typed, bookmarked). "same-site" is a sibling host: another origin, refused.
NOT_CROSS_SITE = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(text: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin or URL, or None when it is not an http(s) one."""
    try:
        url = URL(text.strip())
        port = url.port
    except ValueError:
        return None
    scheme = (url.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not url.host:
        return None
    return scheme, url.host.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


def refuse_cross_site(request: web.Request, settings: Settings) -> None:
    """403 unless the form comes from no browser, or from a page of the gateway's own origin (see the module)."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get(hdrs.ORIGIN)
    own = {_origin(settings.public_gateway_url), _origin(f"{request.scheme}://{request.host}")} - {None}
    if site is not None and site.strip().lower() not in NOT_CROSS_SITE:
        why = f"Sec-Fetch-Site: {site[:40]}"
    elif origin is not None and _origin(origin) not in own:
        why = f"Origin: {origin[:100]}"
    else:
        return
    raise InvalidRequest(
        403,
        f"a multipart/form-data job is taken only from the gateway's own pages or from programs, not from another "
        f"site's page ({why}): any page can make a browser post a form. Send the job as application/json "
        "(with CORS), or from a program.",
    )


class _Budget:
    """The bytes a form may still bring: the whole body's limit, counted over every part read."""

    def __init__(self, limit: int):
        self.limit, self.left = limit, limit

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise InvalidRequest(
                413,
                f"the request body is larger than {self.limit} bytes (made of PLOTFARM_MAX_CODE_BYTES and "
                "PLOTFARM_MAX_INPUT_BYTES)",
            )


async def _read_part(part: BodyPartReader, budget: _Budget, limit: int, too_big: str) -> bytes:
    """A part's bytes, chunk by chunk, refused (413: ``too_big``) as soon as they pass ``limit``."""
    if part.headers.get(hdrs.CONTENT_ENCODING) or part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING):
        raise InvalidRequest(400, f"part {part.name!r:.100}: send its bytes as they are, with no content encoding")
    chunks, size = [], 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        budget.take(len(chunk))
        if size > limit:
            raise InvalidRequest(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: web.Request, settings: Settings) -> tuple[dict, dict[str, bytes]]:
    """The job's JSON object (from the ``job`` part and the ``code`` part) and the files by name."""
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:  # no boundary, or a boundary aiohttp refuses
        raise InvalidRequest(400, f"the body is not a multipart/form-data form: {str(exc)[:200]}") from None
    budget = _Budget(request_body_limit(settings))
    job: dict | None = None
    code: str | None = None
    files: dict[str, bytes] = {}
    parts = 0
    try:
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > settings.max_input_files + 2:
                raise InvalidRequest(
                    413, f"the form has more than {settings.max_input_files} files (PLOTFARM_MAX_INPUT_FILES)"
                )
            if not isinstance(part, BodyPartReader):
                raise InvalidRequest(400, "a form part may not be a multipart of its own")
            if part.filename is not None:
                await _file_part(part, budget, settings, files)
            elif part.name == "code":
                if code is not None:
                    raise InvalidRequest(400, "the form has two code parts")
                code = _text(
                    await _read_part(
                        part,
                        budget,
                        settings.max_code_bytes,
                        f"code is larger than {settings.max_code_bytes} bytes (PLOTFARM_MAX_CODE_BYTES)",
                    ),
                    "code",
                )
            elif part.name == "job":
                if job is not None:
                    raise InvalidRequest(400, "the form has two job parts")
                raw = await _read_part(part, budget, budget.limit, "the job part is too large")
                job = (
                    await asyncio.to_thread(parse_json_body, raw)
                    if len(raw) > CHECK_IN_THREAD_BYTES
                    else parse_json_body(raw)
                )
                if not isinstance(job, dict):
                    raise InvalidRequest(400, 'the job part must be a JSON object such as {"formats": ["png"]}')
            else:
                raise InvalidRequest(
                    400,
                    f"the form part {str(part.name)[:100]!r} is neither code, job, nor a file (a part with a filename)",
                )
    except (ValueError, HttpProcessingError) as exc:  # a malformed form (a NUL in a part's header, ...)
        reason = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        raise InvalidRequest(400, f"the body is not a valid multipart/form-data form: {str(reason)[:200]}") from None
    data = dict(job or {})
    if code is not None:
        if data.get("code") is not None:
            raise InvalidRequest(400, "code came twice: in the code part and in the job part")
        data["code"] = code
    return data, files


async def _file_part(part: BodyPartReader, budget: _Budget, settings: Settings, files: dict[str, bytes]) -> None:
    name = part.filename or ""
    if not name:  # what a browser sends for a file input left empty
        await _read_part(part, budget, 0, "a form part without a file name must be empty")
        return
    check_file_name(name)
    if name in files:
        detail = [{"field": f"files.{name[:100]}", "message": "each file name may appear once"}]
        raise InvalidRequest(400, f"file {name[:100]!r} is sent twice", detail)
    left = settings.max_input_bytes - sum(map(len, files.values()))
    files[name] = await _read_part(
        part,
        budget,
        left,
        f"the input files are more than {settings.max_input_bytes} bytes; the limit is {settings.max_input_bytes} "
        "(PLOTFARM_MAX_INPUT_BYTES)",
    )


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(400, f"the {what} part is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
