"""JSON errors for the aiohttp services (gateway, viewer), and the last resort for our own bugs.

Every error a client sees is ``{"error": "...", "details": [...]}``. Hostile or
malformed input is refused with a 4xx where it is read; what reaches
:func:`unexpected_errors` is a bug of ours, so it is logged with its traceback
and answered with a JSON 500 that says nothing about the internals (aiohttp's
own answer would be a plain-text 500).
"""

import asyncio

import structlog
from aiohttp import hdrs, web

log = structlog.get_logger(__name__)

# Headers of an HTTP exception that describe its text body, not the JSON one sent instead.
BODY_HEADERS = frozenset({hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH, hdrs.CONTENT_ENCODING})
INTERNAL_ERROR = "internal error: the server failed to answer this request; it has been logged"
# Set once a response's headers are on their way: after that no other answer can be sent.
STARTED = web.RequestKey("response_started", bool)


def error_response(status: int, message: str, details: list | None = None, headers=None) -> web.Response:
    body: dict = {"error": message}
    if details:
        body["details"] = details
    return web.json_response(body, status=status, headers=headers)


def http_exception_message(exc: web.HTTPException) -> str:
    """What an aiohttp HTTP exception says: its text, unless that is only the default ``"404: Not Found"``."""
    default_text = f"{exc.status}: {exc.reason}"
    return exc.text if exc.text and exc.text != default_text else exc.reason


def http_exception_headers(exc: web.HTTPException) -> dict[str, str]:
    """What an HTTP exception says beyond its body: Allow on a 405, Retry-After on a 503."""
    return {name: value for name, value in exc.headers.items() if name not in BODY_HEADERS}


@web.middleware
async def json_http_errors(request: web.Request, handler):
    """aiohttp's HTTP exceptions (no route: 404; wrong method: 405; ...) as JSON, not text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, http_exception_message(exc), headers=http_exception_headers(exc))


async def _mark_started(request: web.Request, _response: web.StreamResponse) -> None:
    request[STARTED] = True


def handle_unexpected_errors(app: web.Application) -> None:
    """Let :func:`unexpected_errors` (which must be in ``app``'s middlewares) see when an answer has started."""
    app.on_response_prepare.append(_mark_started)


@web.middleware
async def unexpected_errors(request: web.Request, handler):
    """Any exception a handler did not turn into an answer: logged with its traceback, a JSON 500.

    HTTP exceptions are answers, and a cancelled request (the client went away,
    the server stops) is not an error; both pass through. So does a failure
    after the answer started (a WebSocket's, a streamed file's): another answer
    cannot be sent then, and aiohttp closes the connection (and logs it) itself.
    """
    try:
        return await handler(request)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception:
        if request.get(STARTED):
            raise
        log.exception("unexpected error while answering a request", method=request.method, path=request.path)
        return error_response(500, INTERNAL_ERROR)
