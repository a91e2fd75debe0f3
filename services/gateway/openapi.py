"""The gateway's OpenAPI 3.1 document, generated from the pydantic models, and its docs page.

``GET /api/openapi.json``     the document (public: no API key needed)
``GET /api/docs``             Swagger UI reading it, every file served from here (npm
                              ``swagger-ui-dist``, pinned in web/package.json)

Nothing in the document's schemas is written by hand: request and response bodies are
the JSON Schemas pydantic makes of :class:`shared.vocabulary.JobRequest` and of the
response models in :mod:`shared.api_models`, which the handlers build their answers
from. The limits that depend on settings (longest ``timeout_s``, longest ``wait``, the
code's size) come from this gateway's settings, so the document describes the gateway
that serves it. What is written here is only the table of operations: which path takes
which model and answers which statuses, and it is checked against the router
(tests/unit/test_openapi.py) and against the running gateway by schemathesis
(tests/integration/test_openapi.py).
"""

import copy
import json
import keyword
from functools import cache
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import models_json_schema

from services.gateway.validation import ACCEPT_POST
from shared.api_models import (
    ErrorBody,
    ExecuteResult,
    JobAccepted,
    JobView,
    Liveness,
    Readiness,
    ServiceIndex,
)
from shared.settings import Settings
from shared.vocabulary import (
    BINARY_FORMATS,
    CONTENT_TYPES,
    FORMAT_MEANINGS,
    MAX_FILE_NAME_BYTES,
    Format,
    job_request_model,
)
from shared.web_security import LOCKED_DOWN, content_security_policy, security_headers

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"
# Paths under /api/ that need no API key: the contract is public, like this page.
PUBLIC_PATHS = (OPENAPI_PATH, DOCS_PATH)
PUBLIC_PREFIXES = (f"{DOCS_PATH}/",)

SCHEMA_REF = "#/components/schemas/{model}"
INLINE_FORMATS = (Format.SVG, Format.PNG, Format.JSON)  # what ?include= may put inline


# pydantic cannot push a bound on `StrictFloat | StrictInt` into the union's members and leaves
# it under its Python name (`"gt": 0`), which JSON Schema ignores: give such bounds their
# JSON Schema names, which apply to whichever member is a number.
BOUND_KEYWORDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _json_schema_bounds(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_json_schema_bounds(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    fixed = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):  # names of fields, not keywords
            fixed[key] = {name: _json_schema_bounds(sub) for name, sub in value.items()}
        elif key in BOUND_KEYWORDS and "anyOf" in schema and isinstance(value, int | float):
            fixed[BOUND_KEYWORDS[key]] = value
        else:
            fixed[key] = _json_schema_bounds(value)
    return fixed


def query_model(settings: Settings) -> type[BaseModel]:
    """``GET /api/jobs/{job_id}``'s query: how long to wait, what to put inline."""
    return create_model(
        "JobQuery",
        wait=(
            float,
            Field(
                0,
                ge=0,
                le=settings.max_wait_s,
                description="Seconds to wait for the job to finish (long poll); the answer comes as soon as it does.",
            ),
        ),
        include=(
            list[Literal[INLINE_FORMATS]],
            Field(
                default_factory=list,
                description="Formats to put inline in each figure: `svg`, `png` (base64), `json` (as `spec`).",
            ),
        ),
    )


def _component_schemas(models: list[tuple[type[BaseModel], str]]) -> dict:
    _, top = models_json_schema(models, ref_template=SCHEMA_REF)
    return _json_schema_bounds(top.get("$defs", {}))


# Strict base64 as the gateway decodes it (binascii strict_mode): the standard alphabet, padded, nothing else.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _object_branch(prop: dict) -> dict:
    return next(branch for branch in prop["anyOf"] if branch.get("type") == "object")


def _exact_request(schemas: dict, settings: Settings) -> None:
    """Say in JSON Schema what the request model's validators check and pydantic's schema leaves out.

    The model's own validators (code or figure, text or base64) become ``oneOf``; a dict's key
    pattern becomes ``propertyNames`` (pydantic writes ``patternProperties``, which leaves other
    names allowed); Python keywords are not variable names; base64 has its pattern; a figure list
    has its count. What JSON Schema cannot say is in the descriptions: sizes in bytes (413), and a
    figure's depth.
    """
    request, properties = schemas["JobRequest"], schemas["JobRequest"]["properties"]
    names = {"files": {"maxLength": MAX_FILE_NAME_BYTES}, "variables": {"not": {"enum": sorted(keyword.kwlist)}}}
    for field, extra in names.items():
        branch = _object_branch(properties[field])
        ((pattern, value),) = branch.pop("patternProperties").items()
        branch["propertyNames"] = {"pattern": pattern, **extra}
        branch["additionalProperties"] = value
    figures = next(branch for branch in properties["figure"]["anyOf"] if branch.get("type") == "array")
    figures.update(minItems=1, maxItems=settings.max_figures)
    properties["figure"]["description"] += (
        f" At most {settings.max_figures} figures of at most {settings.max_figure_bytes} bytes of JSON each "
        f"and {settings.max_input_bytes} together (more is refused with 413), nested at most "
        f"{settings.max_figure_depth} levels."
    )
    request["oneOf"] = [
        {"required": ["code"], "properties": {"code": {"type": "string"}}},
        {
            "required": ["figure"],
            "properties": {
                "figure": {"type": ["object", "array"]},
                "files": {"maxProperties": 0},
                "variables": {"maxProperties": 0},
            },
        },
    ]
    input_file = schemas["InputFile"]
    encoded = next(branch for branch in input_file["properties"]["base64"]["anyOf"] if branch.get("type") == "string")
    encoded.update(pattern=BASE64_PATTERN, contentEncoding="base64")
    input_file["oneOf"] = [
        {"required": ["text"], "properties": {"text": {"type": "string"}, "base64": {"type": "null"}}},
        {"required": ["base64"], "properties": {"base64": {"type": "string"}, "text": {"type": "null"}}},
    ]
    # A form's `job` part: the same object, whose code may come in the form's `code` part instead.
    part = {key: value for key, value in copy.deepcopy(request).items() if key != "oneOf"}
    schemas["JobPart"] = {
        **part,
        "title": "JobPart",
        "description": "A form's `job` part: the JSON body's object, where `code` may come as the form's `code` part.",
    }


def _form_body(job_request: type[BaseModel]) -> dict:
    """``multipart/form-data``: what services/gateway/multipart.py reads."""
    return {
        "schema": {
            "type": "object",
            "description": "A form: a `code` part, or a `job` part (the JSON body's object), or both (then `job` "
            "brings no `code`), and a part per input file, named by its filename (`curl -F code=@plot.py -F "
            "file=@sales.csv`). Taken only from programs and the gateway's own pages, never from another site's "
            "page (403): a browser posts a form anywhere without asking.",
            "properties": {
                "code": {"type": "string", "pattern": r"\S", "description": "The Python code, as UTF-8 text."},
                "job": {
                    "$ref": SCHEMA_REF.format(model="JobPart"),
                    "description": "The JSON body's object, sent with `Content-Type: application/json`.",
                },
                "file": {
                    "type": "string",
                    "contentMediaType": "application/octet-stream",
                    "description": "An input file: the part's `filename` is its name (the file-name rules apply). "
                    "Any number of file parts may be sent, whatever their field names, each with its own filename.",
                },
            },
            "additionalProperties": False,
            "oneOf": [
                {
                    "required": ["code"],
                    "properties": {"job": {"properties": {"code": {"type": "null"}, "figure": {"type": "null"}}}},
                },
                {"required": ["job"], "not": {"required": ["code"]}, "properties": {"job": _ref(job_request)}},
            ],
        },
        "encoding": {
            "job": {"contentType": "application/json"},
            "code": {"contentType": "text/plain"},
            "file": {"contentType": "application/octet-stream"},
        },
    }


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": SCHEMA_REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(model)}}}
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}


def _error(description: str, *, retry: bool = False) -> dict:
    return _json(ErrorBody, description, RETRY_AFTER if retry else None)


def _responses(*statuses: int, **custom: dict) -> dict:
    """The usual error answers by status, plus the operation's own ones (keyword ``s200=...``)."""
    common = {
        400: _error(
            "The request is invalid: not JSON (or not a form), neither or both of `code` and `figure`, an empty "
            "`code`, a file name that is not one plain name, base64 that does not decode, a variable named by a "
            "Python keyword, a wrong type, an unknown field or a value out of range; `details` names each field."
        ),
        403: _error(
            "A `multipart/form-data` job from another site's page (`Sec-Fetch-Site` cross-site or same-site, or "
            "an `Origin` that is not the gateway's): any page can make a browser post a form, so forms are taken "
            "only from programs and the gateway's own pages. JSON is not refused so: it needs a CORS preflight."
        ),
        401: {"$ref": "#/components/responses/Unauthorized"},
        404: _error("No such job (unknown, another tenant's, or older than the gateway keeps), or no such file."),
        413: _error(
            "Over a size limit; the message names it and its setting: `code` (`PLOTFARM_MAX_CODE_BYTES`), input "
            "files and variables, or figures, together (`PLOTFARM_MAX_INPUT_BYTES`), one figure's JSON "
            "(`PLOTFARM_MAX_FIGURE_BYTES`), a form's parts (`PLOTFARM_MAX_INPUT_FILES`), or the whole body."
        ),
        415: {
            **_error(
                "The body was sent neither as `Content-Type: application/json` nor as `multipart/form-data` "
                "(parameters such as `charset` may follow)."
            ),
            "headers": {
                "Accept-Post": {
                    "description": "The media types a job is accepted in.",
                    "required": True,
                    "schema": {"type": "string", "const": ACCEPT_POST},
                }
            },
        },
        429: _error(
            "Too many submissions from this tenant or address, or the tenant's results fill its share of the "
            "events stream (`PLOTFARM_TENANT_SHARE`) and another would push other tenants' results out; retry "
            "after `Retry-After` seconds.",
            retry=True,
        ),
        503: _error(
            "RabbitMQ cannot take the job now (unreachable, or no confirm in time), or the gateway is "
            "still reading the job history; retry after `Retry-After` seconds.",
            retry=True,
        ),
    }
    responses = {str(status): common[status] for status in statuses}
    responses.update({key.removeprefix("s"): value for key, value in custom.items()})
    return dict(sorted(responses.items()))


def _figure_operation(fmt: str) -> dict:
    """``GET /api/jobs/{id}/figures/{n}.{fmt}``, described from the vocabulary's words for the format (so a
    format added there is documented here with no edit)."""
    meaning = FORMAT_MEANINGS[fmt]
    description = meaning[0].upper() + meaning[1:] + "."
    schema: dict = {"type": "object"} if fmt == Format.JSON else {"type": "string"}
    if fmt in BINARY_FORMATS:
        schema["contentMediaType"] = CONTENT_TYPES[fmt]
    return {
        "operationId": f"getFigure{fmt.capitalize()}",
        "tags": ["jobs"],
        "summary": f"One figure of a job as {fmt}",
        "description": f"{description} Only in the formats the job asked for (`formats`); sent with a "
        "`Content-Security-Policy` that sandboxes it.",
        "parameters": [
            {"$ref": "#/components/parameters/JobId"},
            {"$ref": "#/components/parameters/FigureIndex"},
        ],
        "responses": _responses(
            401,
            404,
            503,
            s200={"description": description, "content": {CONTENT_TYPES[fmt]: {"schema": schema}}},
        ),
    }


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    parameters = []
    for name, prop in schema["properties"].items():
        description = prop.pop("description", "")
        prop.pop("title", None)
        parameter = {"name": name, "in": "query", "required": False, "description": description, "schema": prop}
        if prop.get("type") == "array":  # ?include=svg,png
            parameter.update(style="form", explode=False)
        parameters.append(parameter)
    return parameters


def openapi_document(settings: Settings, *, keys_enabled: bool) -> dict:
    """The OpenAPI 3.1 document for a gateway with these settings."""
    job_request = job_request_model(settings)
    schemas = _component_schemas(
        [
            (job_request, "validation"),
            (JobAccepted, "serialization"),
            (JobView, "serialization"),
            (ExecuteResult, "serialization"),
            (ErrorBody, "serialization"),
            (Liveness, "serialization"),
            (Readiness, "serialization"),
            (ServiceIndex, "serialization"),
        ]
    )
    _exact_request(schemas, settings)
    # With keys on, every API call needs one; without, none is asked for (a key sent is ignored).
    security = [{"bearerAuth": []}, {"apiKeyHeader": []}] if keys_enabled else [{}]
    jobs = {
        path: {method: {**operation, "security": security} for method, operation in methods.items()}
        for path, methods in _job_paths(settings, job_request).items()
    }
    return {
        "openapi": "3.1.0",
        "info": _info(keys_enabled),
        "servers": [{"url": settings.public_gateway_url}],
        "tags": [
            {
                "name": "jobs",
                "description": "Submit code with its data, or a figure; get its status, result and figures.",
            },
            {"name": "health", "description": "For load balancers and orchestrators."},
            {"name": "pages", "description": "The client-side page and its files."},
            {"name": "meta", "description": "This document."},
        ],
        "paths": {**jobs, **_health_paths(), **_page_paths(), **_meta_paths()},
        "components": {**_components(), "schemas": schemas},
    }


def _job_paths(settings: Settings, job_request: type[BaseModel]) -> dict:
    """The API proper: submit, status, figures, the demo's call (each needs a key when keys are on)."""
    job_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref(job_request)}, "multipart/form-data": _form_body(job_request)},
    }
    return {
        "/api/jobs": {
            "post": (
                {
                    "operationId": "submitJob",
                    "tags": ["jobs"],
                    "summary": "Submit a job",
                    "description": "Queues the code (with its input files and variables), or a figure's JSON, for a "
                    "renderer. Send JSON, or a `multipart/form-data` form whose file parts are the input files. "
                    "Answers 202 only after RabbitMQ confirmed the "
                    f"job, or 503 within {settings.publish_timeout_s:g} s (never a hang).",
                    "requestBody": job_body,
                    "responses": _responses(
                        400,
                        401,
                        403,
                        413,
                        415,
                        429,
                        503,
                        s202={
                            **_json(JobAccepted, "Accepted: the job is in the queue."),
                            "links": {
                                "GetJob": {
                                    "operationId": "getJob",
                                    "parameters": {"job_id": "$response.body#/job_id"},
                                    "description": "The job's status and result.",
                                }
                            },
                        },
                    ),
                }
            )
        },
        "/api/jobs/{job_id}": {
            "get": (
                {
                    "operationId": "getJob",
                    "tags": ["jobs"],
                    "summary": "A job's status and result",
                    "description": "With `wait`, a long poll: answers when the job is final or `wait` seconds "
                    f"passed (at most {settings.max_wait_s:g} on this gateway).",
                    "parameters": [
                        {"$ref": "#/components/parameters/JobId"},
                        *_query_parameters(query_model(settings)),
                    ],
                    "responses": _responses(400, 401, 404, 503, s200=_json(JobView, "The job.")),
                }
            )
        },
        **{f"/api/jobs/{{job_id}}/figures/{{index}}.{fmt}": {"get": _figure_operation(fmt)} for fmt in CONTENT_TYPES},
        "/execute": {
            "post": (
                {
                    "operationId": "execute",
                    "tags": ["jobs"],
                    "summary": "Submit a job and wait for it (the original demo's call)",
                    "description": f"Waits up to {settings.max_wait_s:g} s for the result; the first figure's SVG "
                    "and PNG (base64, when asked for) are on top.",
                    "requestBody": job_body,
                    "responses": _responses(
                        400,
                        401,
                        403,
                        413,
                        415,
                        429,
                        503,
                        s200=_json(ExecuteResult, "The job is final: done or failed."),
                        s202=_json(JobView, "Still queued or running when the wait ran out."),
                    ),
                }
            )
        },
    }


def _health_paths() -> dict:
    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["health"],
                "summary": "Liveness",
                "responses": {"200": _json(Liveness, "The process serves.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["health"],
                "summary": "Readiness: connected to the broker, the events stream followed, its history read",
                "responses": {
                    "200": _json(Readiness, "Ready for jobs."),
                    "503": _json(Readiness, "Not ready; each failing check says why."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["health"],
                "summary": "Prometheus metrics: submissions accepted and refused, queue depths, the events follower",
                "description": "The Prometheus text format; every name is in shared/metrics.py.",
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _page_paths() -> dict:
    return {
        "/": {
            "get": {
                "operationId": "index",
                "tags": ["pages"],
                "summary": "Where things are",
                "responses": {"200": _json(ServiceIndex, "The gateway's URLs.")},
            }
        },
        "/client-plot": {
            "get": {
                "operationId": "clientPlot",
                "tags": ["pages"],
                "summary": "The page that runs code in Pyodide in your own browser",
                "responses": {
                    "200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
                    "404": _error("The page's files are missing on this gateway."),
                },
            }
        },
        "/assets/{build}/{path}": {
            "get": {
                "operationId": "asset",
                "tags": ["pages"],
                "summary": "A file the client page loads (Pyodide, plotly.js, wheels, our scripts)",
                "description": "Cached for a year (`immutable`): `build` changes whenever a file does.",
                "parameters": [
                    {
                        "name": "build",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
                    },
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "description": "The file's path under the build, e.g. `pyodide/pyodide.mjs` (its `/` unescaped).",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_./-]+$"},
                    },
                ],
                "responses": {
                    "200": {"description": "The file.", "content": {"*/*": {"schema": {}}}},
                    "404": _error("Not one of this build's files."),
                },
            }
        },
    }


def _meta_paths() -> dict:
    return {
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "tags": ["meta"],
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        DOCS_PATH: {
            "get": {
                "operationId": "apiDocs",
                "tags": ["meta"],
                "summary": "This document as a page (Swagger UI, served from here)",
                "responses": {
                    "200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
                },
            }
        },
    }


def _info(keys_enabled: bool) -> dict:
    auth_note = (
        "This gateway requires an API key on every `/api/` call and `/execute`: `Authorization: Bearer <key>` or "
        "`X-API-Key: <key>`; the tenant is the one on file for the key, and tenants see only their own jobs."
        if keys_enabled
        else "This gateway has no API keys configured: the API is open. A gateway with keys "
        "(`PLOTFARM_API_KEYS`) requires `Authorization: Bearer <key>` or `X-API-Key: <key>`."
    )
    return {
        "title": "plotfarm gateway",
        "version": "1",
        "summary": "A sandboxed render farm for Plotly: send Python code, get figures back.",
        "description": f'{auth_note}\n\nEvery error is JSON: `{{"error": "...", "details": [...]}}`. '
        "Submissions are rate limited per tenant (or client address): beyond the limit, 429 with `Retry-After`; "
        "so are a tenant's while its results fill its share of the events stream and the stream is full.",
    }


def _components() -> dict:
    """Parameters, headers, responses and security schemes the operations refer to (schemas apart)."""
    return {
        "parameters": {
            "JobId": {
                "name": "job_id",
                "in": "path",
                "required": True,
                "description": "The id `POST /api/jobs` answered with.",
                "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            },
            "FigureIndex": {
                "name": "index",
                "in": "path",
                "required": True,
                "description": "The figure's position, from 0.",
                "schema": {"type": "integer", "minimum": 0},
            },
        },
        "headers": {
            "RetryAfter": {
                "description": "Seconds to wait before trying again.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "responses": {
            "Unauthorized": {
                "description": "A valid API key is required (only on a gateway with keys).",
                "headers": {
                    "WWW-Authenticate": {
                        "required": True,
                        "schema": {"type": "string", "const": 'Bearer realm="plotfarm"'},
                    }
                },
                "content": {"application/json": {"schema": _ref(ErrorBody)}},
            }
        },
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`."},
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
    }


# ---- serving it ------------------------------------------------------------------------

SWAGGER_UI_PACKAGE = "swagger-ui-dist"
# The only files of the package the page needs; nothing else under it is served.
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
DOCS_SCRIPT = "docs.js"
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>plotfarm gateway API</title>
<link rel="icon" type="image/png" href="{base}/favicon-32x32.png">
<link rel="stylesheet" href="{base}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script src="{base}/{script}"></script>
</body>
</html>
"""
# Kept out of the page so the page's CSP needs no inline script.
DOCS_JS = f"""window.addEventListener("load", () => {{
  window.ui = SwaggerUIBundle({{
    url: "{OPENAPI_PATH}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
  }});
}});
"""
# Swagger UI: its own script and styles, style attributes it sets, SVG icons as data: URLs;
# it fetches only the document (and, with "Try it out", this gateway's API).
DOCS_POLICY = content_security_policy(
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    *LOCKED_DOWN,
)


class ApiDocs:
    def __init__(self, settings: Settings, *, keys_enabled: bool):
        self.settings = settings
        self.keys_enabled = keys_enabled
        self.package_dir: Path = settings.web_dir / "node_modules" / SWAGGER_UI_PACKAGE
        self._files: dict[str, bytes] = {}

    @cache  # noqa: B019  (one instance per app; the document never changes while it runs)
    def document_bytes(self) -> bytes:
        return json.dumps(openapi_document(self.settings, keys_enabled=self.keys_enabled), indent=1).encode()

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self.document_bytes(),
            content_type="application/json",
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
        )

    async def page(self, _request: web.Request) -> web.Response:
        html = DOCS_PAGE.format(base=DOCS_PATH, script=DOCS_SCRIPT)
        return web.Response(
            text=html,
            content_type="text/html",
            headers={**security_headers(DOCS_POLICY, cross_origin_isolated=False), "Cache-Control": "no-cache"},
        )

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == DOCS_SCRIPT:
            body, content_type = DOCS_JS.encode(), "text/javascript"
        elif name in SWAGGER_UI_FILES:
            if name not in self._files:
                path = self.package_dir / name
                if not path.is_file():
                    raise web.HTTPNotFound(text=f"{name} is missing on this gateway (run make assets)")
                self._files[name] = path.read_bytes()
            body, content_type = self._files[name], SWAGGER_UI_FILES[name]
        else:
            raise web.HTTPNotFound(text=f"no docs file {name}")
        return web.Response(
            body=body,
            headers={
                **security_headers(DOCS_POLICY, cross_origin_isolated=False),
                "Content-Type": content_type,
                "Cache-Control": "no-cache",
            },
        )


def add_docs_routes(app: web.Application, settings: Settings, *, keys_enabled: bool) -> None:
    docs = ApiDocs(settings, keys_enabled=keys_enabled)
    app.router.add_get(OPENAPI_PATH, docs.openapi)
    app.router.add_get(DOCS_PATH, docs.page)
    app.router.add_get(DOCS_PATH + "/{name}", docs.asset)
