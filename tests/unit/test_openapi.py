"""The OpenAPI document: generated from the models, covering every route, true to what the handlers send.

The integration test (tests/integration/test_openapi.py) runs schemathesis against a real
gateway; these check the same promises without a broker, fast, and for the shapes random
requests rarely reach: finished jobs in every format, /execute's answers, 401, 413, 429, 503.
"""

import asyncio
import base64
import json

import jsonschema
import pytest
import schemathesis
from aiohttp.test_utils import TestClient, TestServer
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from services.gateway.app import create_app, job_view
from services.gateway.openapi import openapi_document
from services.gateway.validation import InvalidRequest, parse_job_request
from shared.api_models import JobView
from shared.broker import BrokerUnavailable
from shared.jobs import JobIndex
from shared.messages import JobError, RenderResult
from shared.settings import Settings
from shared.vocabulary import BINARY_FORMATS, CONTENT_TYPES, FORMAT_MEANINGS, job_request_model

GW = "http://gw"
JSON = {"Content-Type": "application/json"}
KEY = "unit-key"


def settings(**fields) -> Settings:
    return Settings(_env_file=None, public_gateway_url=GW, public_viewer_url="http://viewer", **fields)


class Broker:
    """Takes every job; with ``finish``, its result is in the index at once (a renderer in no time)."""

    def __init__(self, index=None, fail=False):
        self.index, self.fail = index, fail

    def not_ready_because(self):
        return "connection to RabbitMQ lost; reconnecting" if self.fail else None

    async def publish_job(self, job):
        if self.fail:
            raise BrokerUnavailable("not connected to RabbitMQ")
        if self.index is not None:
            asyncio.get_running_loop().call_later(0.01, self.index.apply, result_for(job.job_id, "1/0" in job.code))

    async def publish_event(self, event):
        pass


class Follower:
    def __init__(self, caught_up=True):
        self.caught_up = asyncio.Event()
        if caught_up:
            self.caught_up.set()

    def not_ready_because(self):
        return None if self.caught_up.is_set() else "still reading"


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
SPEC = {"data": [{"type": "bar", "y": [1]}], "layout": {"title": {"text": "t"}}}


def result_for(job_id: str, failed: bool = False) -> RenderResult:
    if failed:
        error = JobError(type="ZeroDivisionError", message="division by zero", traceback="Traceback ...")
        return RenderResult(job_id=job_id, status="failed", error=error, stderr="oops")
    figures = [{"svg": "<svg/>", "png": PNG, "spec": SPEC}, {"svg": "<svg>2</svg>"}]
    return RenderResult(job_id=job_id, status="done", figures=figures, stdout="out", packages=["numpy"])


@pytest.fixture
async def gateway():
    clients = []

    async def make(*, broker=None, follower=None, finish=False, **fields):
        config = settings(**fields)
        index = JobIndex(10**6)
        broker = broker or Broker(index if finish else None)
        app = create_app(config, broker, index, follower or Follower())
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        document = openapi_document(config, keys_enabled=bool(config.api_keys))
        return client, index, Contract(document)

    yield make
    for client in clients:
        await client.close()


class Contract:
    """Checks one HTTP answer against the document: status listed, content type, headers, body schema."""

    def __init__(self, document: dict):
        self.document = document
        jsonschema.Draft202012Validator.check_schema({"$defs": document["components"]["schemas"]})
        self.registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(document))

    def _resolve(self, node: dict) -> dict:
        while "$ref" in node:
            node = self.registry.resolver("urn:doc").lookup(f"urn:doc{node['$ref']}").contents
        return node

    async def check(self, response, path: str, method: str = "get") -> None:
        operation = self.document["paths"][path][method]
        assert str(response.status) in operation["responses"], f"{response.status} not documented for {path}"
        documented = self._resolve(operation["responses"][str(response.status)])
        for name, header in documented.get("headers", {}).items():
            header = self._resolve(header)
            if header.get("required"):
                assert name in response.headers, f"{response.status} of {path} lacks {name}"
                value = response.headers[name]
                jsonschema.validate(
                    int(value) if header["schema"].get("type") == "integer" else value, header["schema"]
                )
        content_type = response.content_type
        assert content_type in documented["content"] or "*/*" in documented["content"], content_type
        if content_type == "application/json":
            schema = documented["content"][content_type]["schema"]
            if "$ref" in schema:
                schema = {"$ref": f"urn:doc{schema['$ref']}"}
            validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(await response.json())]
            assert not errors, errors


# ---- the document itself --------------------------------------------------------------------


def test_the_document_is_openapi_31_that_schemathesis_reads():
    document = openapi_document(settings(), keys_enabled=False)
    assert document["openapi"] == "3.1.0"
    loaded = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
    json.dumps(document)  # plain JSON, nothing else


def test_schemas_come_from_the_models_and_use_json_schema_words_only():
    document = openapi_document(settings(max_timeout_s=30, max_wait_s=7), keys_enabled=True)
    schemas = document["components"]["schemas"]
    assert (
        schemas["JobView"]["properties"].keys() == JobView.model_json_schema(mode="serialization")["properties"].keys()
    )
    assert set(schemas["JobRequest"]["properties"]) == set(job_request_model(settings()).model_fields)
    timeout = schemas["JobRequest"]["properties"]["timeout_s"]
    assert timeout["anyOf"][0]["exclusiveMinimum"] == 0 and timeout["anyOf"][0]["maximum"] == 30

    def python_words(node):
        if isinstance(node, dict):
            found = {key for key in node if key in ("gt", "ge", "lt", "le")} if "anyOf" in node else set()
            return found.union(*(python_words(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(python_words(item) for item in node))
        return set()

    assert not python_words(schemas), "pydantic left a bound JSON Schema does not know"
    wait = next(p for p in document["paths"]["/api/jobs/{job_id}"]["get"]["parameters"] if p.get("name") == "wait")
    assert wait["schema"]["maximum"] == 7
    assert document["paths"]["/api/jobs"]["post"]["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    assert openapi_document(settings(), keys_enabled=False)["paths"]["/api/jobs"]["post"]["security"] == [{}]


FIGURE_PATH = "/api/jobs/{job_id}/figures/{index}"


def test_every_route_is_in_the_document():
    """Each aiohttp route is documented, and each documented operation is a route (figures: one route, 4 paths)."""
    app = create_app(settings(), Broker(), JobIndex(10**6), Follower())
    document = openapi_document(settings(), keys_enabled=False)
    documented = set()
    for path, methods in document["paths"].items():
        if path.startswith(f"{FIGURE_PATH}."):
            assert path.removeprefix(f"{FIGURE_PATH}.") in CONTENT_TYPES
            path = f"{FIGURE_PATH}.{{format}}"
        documented |= {(method.upper(), path) for method in methods}
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds one to every GET
            continue
        info = route.resource.get_info()
        path = info.get("path") or info["formatter"]
        routes.add(
            (route.method, path.replace(r"{index:\d+}", "{index}").replace("{format:svg|png|json|html}", "{format}"))
        )
    undocumented = {("GET", "/api/docs/{name}")}  # the docs page's own files
    assert routes - undocumented == documented


# ---- the handlers send what it says ---------------------------------------------------------


async def test_job_answers_conform(gateway):
    client, index, contract = await gateway()
    accepted = await client.post("/api/jobs", json={"code": "x", "formats": ["svg", "png", "json", "html"]})
    assert accepted.status == 202
    await contract.check(accepted, "/api/jobs", "post")
    job_id = (await accepted.json())["job_id"]
    queued = await client.get(f"/api/jobs/{job_id}")
    await contract.check(queued, "/api/jobs/{job_id}")
    assert "figures" not in await queued.json()  # absent until final, as before the models
    index.apply(result_for(job_id))
    for query in ("", "?include=svg,png,json", "?include=svg&wait=0"):
        response = await client.get(f"/api/jobs/{job_id}{query}")
        assert response.status == 200
        await contract.check(response, "/api/jobs/{job_id}")
    body = await (await client.get(f"/api/jobs/{job_id}?include=png,json")).json()
    assert body["figures"][0]["png"] == PNG and body["figures"][0]["spec"] == SPEC
    assert (
        set(body["figures"][0]["files"]) == {"svg", "png", "json", "html"}
        and "bytes" not in body["figures"][0]["files"]["html"]
    )
    assert set(body["figures"][1]["files"]) == {"svg"}
    for fmt in ("svg", "png", "json", "html"):
        path = f"/api/jobs/{{job_id}}/figures/{{index}}.{fmt}"
        await contract.check(await client.get(f"/api/jobs/{job_id}/figures/0.{fmt}"), path)
        if fmt != "svg":
            missing = await client.get(f"/api/jobs/{job_id}/figures/1.{fmt}")
            assert missing.status == 404
            await contract.check(missing, path)
    failed_id = (await (await client.post("/api/jobs", json={"code": "1/0"})).json())["job_id"]
    index.apply(result_for(failed_id, failed=True))
    failed = await client.get(f"/api/jobs/{failed_id}")
    assert (await failed.json())["error"]["type"] == "ZeroDivisionError"
    await contract.check(failed, "/api/jobs/{job_id}")


async def test_the_models_keep_the_answers_as_they_were(gateway):
    """Built through JobView, a job's JSON is exactly job_view()'s dict: same keys, same values."""
    client, index, _ = await gateway()
    job_id = (await (await client.post("/api/jobs", json={"code": "x", "formats": ["svg", "json"]})).json())["job_id"]
    for step in ("queued", "done"):
        if step == "done":
            index.apply(result_for(job_id))
        sent = await (await client.get(f"/api/jobs/{job_id}?include=svg,json")).json()
        record = index.get(job_id)
        assert sent == json.loads(json.dumps(job_view(record, settings(), include=frozenset({"svg", "json"}))))


async def test_execute_answers_conform(gateway):
    client, _, contract = await gateway(finish=True)
    done = await client.post("/execute", json={"code": "x", "formats": ["svg", "png"]})
    assert done.status == 200 and (await done.json())["svg"] == "<svg/>" and (await done.json())["png"] == PNG
    await contract.check(done, "/execute", "post")
    failed = await client.post("/execute", json={"code": "1/0"})
    assert failed.status == 200 and (await failed.json())["svg"] is None
    await contract.check(failed, "/execute", "post")
    client, _, contract = await gateway(max_wait_s=0.05)  # nothing finishes it
    waiting = await client.post("/execute", json={"code": "x"})
    assert waiting.status == 202
    await contract.check(waiting, "/execute", "post")


async def test_error_answers_conform(gateway):
    client, _, contract = await gateway(max_code_bytes=100, retry_after_s=7)
    cases = [
        (await client.post("/api/jobs", data=b"{", headers=JSON), 400),
        (await client.post("/api/jobs", json={"code": "x", "colour": "red"}), 400),
        (await client.post("/api/jobs", json={"code": "x" * 101}), 413),
        (await client.post("/api/jobs", data=b'{"code": "\\ud800"}', headers=JSON), 400),
        (await client.post("/api/jobs", data=b'{"code": "x"}', headers={"Content-Type": "text/plain"}), 415),
        (await client.get(f"/api/jobs/{'0' * 32}"), 404),
        (await client.get(f"/api/jobs/{'0' * 32}?wait=1000"), 400),
        (await client.get(f"/api/jobs/{'0' * 32}?include=pdf"), 400),
    ]
    for response, status in cases:
        assert response.status == status, await response.text()
        path = "/api/jobs" if response.method == "POST" else "/api/jobs/{job_id}"
        await contract.check(response, path, response.method.lower())
    details = await (await client.post("/api/jobs", json={"code": "x", "width": 1})).json()
    assert details["details"] == [{"field": "width", "message": "Input should be greater than or equal to 50"}]

    wrong_method = await client.put("/api/jobs")
    assert wrong_method.status == 405 and wrong_method.headers["Allow"] == "POST"
    assert (await wrong_method.json())["error"] == "Method Not Allowed"

    client, _, contract = await gateway(broker=Broker(fail=True), retry_after_s=7)
    refused = await client.post("/api/jobs", json={"code": "x"})
    assert refused.status == 503 and refused.headers["Retry-After"] == "7"
    await contract.check(refused, "/api/jobs", "post")
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503
    await contract.check(not_ready, "/readyz")

    client, _, contract = await gateway(follower=Follower(caught_up=False), retry_after_s=7)
    reading = await client.get(f"/api/jobs/{'0' * 32}")
    assert reading.status == 503 and reading.headers["Retry-After"] == "7"
    await contract.check(reading, "/api/jobs/{job_id}")

    client, _, contract = await gateway(api_keys=f"team={KEY}", rate_limit_per_minute=1, rate_limit_burst=1)
    unauthorized = await client.post("/api/jobs", json={"code": "x"})
    assert unauthorized.status == 401
    await contract.check(unauthorized, "/api/jobs", "post")
    headers = {"X-API-Key": KEY}
    assert (await client.post("/api/jobs", json={"code": "x"}, headers=headers)).status == 202
    limited = await client.post("/api/jobs", json={"code": "x"}, headers=headers)
    assert limited.status == 429
    await contract.check(limited, "/api/jobs", "post")


async def test_health_index_and_the_docs_page(gateway):
    client, _, contract = await gateway(api_keys=f"team={KEY}")
    for path in ("/healthz", "/readyz", "/"):
        response = await client.get(path)
        assert response.status == 200
        await contract.check(response, path)
    document = await client.get("/api/openapi.json")  # public, though keys are on
    assert document.status == 200 and (await document.json())["openapi"] == "3.1.0"
    page = await client.get("/api/docs")
    assert page.status == 200 and page.content_type == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy and "connect-src 'self'" in policy
    script = await client.get("/api/docs/docs.js")
    assert script.status == 200 and "/api/openapi.json" in await script.text()
    for name in ("package.json", "..%2Fpackage.json", "index.html"):
        assert (await client.get(f"/api/docs/{name}")).status == 404
    assert (await client.get("/api/jobs/x", headers={})).status == 401  # the rest of /api/ is not


@pytest.mark.parametrize(
    "body",
    [
        {"code": "x"},
        {"code": " x "},
        {"code": "x", "width": 298.0, "height": 5000, "timeout_s": 60, "scale": 4.0},
        {"code": "x", "timeout_s": 0.001, "formats": ["svg", "svg"], "scale": None},
        {"code": "x", "formats": ["png", "html", "json", "svg"]},
        {"code": ""},
        {"code": " \n\t\x1c"},
        {"code": "x", "timeout_s": 0},
        {"code": "x", "timeout_s": 60.5},
        {"code": "x", "width": 298.5},
        {"code": "x", "width": True},
        {"code": "x", "scale": 4.01},
        {"code": "x", "formats": []},
        {"code": "x", "formats": ["pdf"]},
        {"code": "x", "colour": "red"},
        {"code": 1},
        {},
        # inputs
        {"code": "x", "files": {"a.csv": {"text": "1,2"}, "b": {"base64": "AAE="}}, "variables": {"n": [1], "_": 2}},
        {"code": "x", "files": {"b": {"base64": "AAE=", "text": None}}, "variables": {}},
        {"code": "x", "files": {"../x": {"text": "a"}}},
        {"code": "x", "files": {"..": {"text": "a"}}},
        {"code": "x", "files": {"a\x00b": {"text": "a"}}},
        {"code": "x", "files": {"a": {"text": "a", "base64": "AAE="}}},
        {"code": "x", "files": {"a": {}}},
        {"code": "x", "files": {"a": {"base64": "AAE"}}},
        {"code": "x", "files": {"a": {"base64": "AA-_"}}},
        {"code": "x", "files": {f"f{i}": {"text": ""} for i in range(101)}},
        {"code": "x", "variables": {"class": 1}},
        {"code": "x", "variables": {"__x": 1}},
        {"code": "x", "variables": {"match": 1}},
        # figures
        {"figure": {"data": [{"type": "bar", "y": [1]}]}, "formats": ["pdf", "jpeg", "webp"], "scale": 0.5},
        {"figure": [{"data": []}, {"data": []}], "code": None},
        {"figure": []},
        {"figure": [{}] * 21},
        {"figure": {}, "code": "x"},
        {"figure": {}, "files": {"a": {"text": "a"}}},
        {"figure": {}, "files": {}, "variables": None},
        {"figure": "{}"},
        {"figure": None},
    ],
)
def test_the_request_schema_accepts_what_the_gateway_accepts(body):
    config = settings()
    document = openapi_document(config, keys_enabled=False)
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(document))
    schema = {"$ref": "urn:doc#/components/schemas/JobRequest"}
    documented_valid = jsonschema.Draft202012Validator(schema, registry=registry).is_valid(body)
    try:
        parse_job_request(json.dumps(body).encode(), config)
        accepted = True
    except InvalidRequest as exc:
        assert exc.status == 400
        accepted = False
    assert accepted == documented_valid


def test_every_format_of_the_vocabulary_has_its_figure_path():
    """Described from the vocabulary (FORMAT_MEANINGS): a new format is documented with no edit here."""
    paths = openapi_document(settings(), keys_enabled=False)["paths"]
    for fmt, content_type in CONTENT_TYPES.items():
        operation = paths[f"{FIGURE_PATH}.{fmt}"]["get"]
        schema = operation["responses"]["200"]["content"][content_type]["schema"]
        assert FORMAT_MEANINGS[fmt][1:] in operation["description"]
        if fmt in BINARY_FORMATS:
            assert schema["contentMediaType"] == content_type


@pytest.mark.parametrize(
    ("form", "valid"),
    [
        ({"code": "x"}, True),
        ({"code": "x", "file": "bytes"}, True),
        ({"code": "x", "job": {"formats": ["png"], "files": {"a": {"text": "1"}}}}, True),
        ({"job": {"code": "x"}}, True),
        ({"job": {"figure": {"data": []}}}, True),
        ({"code": "x", "job": {"code": "y"}}, False),
        ({"code": "x", "job": {"figure": {}}}, False),
        ({"file": "bytes"}, False),
        ({"code": "x", "other": "y"}, False),
    ],
)
def test_the_form_schema_says_which_forms_are_taken(form, valid):
    document = openapi_document(settings(), keys_enabled=False)
    body = document["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(document))
    schema = json.loads(json.dumps(body["schema"]).replace('"#/components', '"urn:doc#/components'))
    assert jsonschema.Draft202012Validator(schema, registry=registry).is_valid(form) == valid
    assert body["encoding"]["job"]["contentType"] == "application/json"


async def test_form_answers_conform(gateway):
    client, _, contract = await gateway(max_code_bytes=100)
    boundary = "b"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    def form(code: str, filename: str) -> bytes:
        return (
            f'--b\r\nContent-Disposition: form-data; name="code"\r\n\r\n{code}\r\n'
            f'--b\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n1,2\r\n--b--\r\n'
        ).encode()

    cases = [
        (await client.post("/api/jobs", data=form("x", "a.csv"), headers=headers), 202),
        (await client.post("/api/jobs", data=form("x", "../a.csv"), headers=headers), 400),
        (await client.post("/api/jobs", data=form("x" * 101, "a.csv"), headers=headers), 413),
        (await client.post("/api/jobs", data=form("x", "a"), headers={**headers, "Sec-Fetch-Site": "cross-site"}), 403),
        (await client.post("/api/jobs", data=b"x", headers={"Content-Type": "text/csv"}), 415),
    ]
    for response, status in cases:
        assert response.status == status, await response.text()
        await contract.check(response, "/api/jobs", "post")
