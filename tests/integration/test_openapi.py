"""The running gateway against its own OpenAPI document, with schemathesis.

schemathesis sends every operation in ``/api/openapi.json`` requests made from the
document, valid and invalid ones (its examples, coverage and fuzzing phases), and checks
each answer: never a 5xx; a documented status, content type, headers and body; valid data
accepted and invalid data refused; auth enforced where it is declared; 405 with ``Allow``
for the methods the document does not list.

The gateway under test is started for this module with API keys on (so the document
declares auth and schemathesis checks that it is enforced) and a 1 s longest long poll:
its document then says ``wait`` is at most 1, and ``POST /execute`` waits at most that
long, so no generated request can hang. It uses a namespace of its own, which no renderer
reads: the ~200 jobs schemathesis submits wait in that queue, never in front of the other
tests' jobs, and are deleted with it. The session's own gateway and renderers then run
real jobs, done and failed, in every format, whose answers are checked against the same
document (the generated requests almost never name a job that exists).

How the document reaches schemathesis: its pytest integration wants it when tests are
collected, before the session's stack runs, and ``schemathesis.pytest.from_fixture``, which
would load it later, does not work with pytest 9.2 (it renames test nodes through
``Node._nodeid``, which pytest removed). So it is generated here by the gateway's own code
from the settings the gateway under test gets, and the first test checks that the gateway
serves exactly this document.
"""

import asyncio
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from services.gateway.openapi import openapi_document
from shared.settings import Settings
from tests.support import delete_namespace

API_KEY = "openapi-contract-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_WAIT_S = 1
GATEWAY_ENV = {"PLOTFARM_API_KEYS": f"contract={API_KEY}", "PLOTFARM_MAX_WAIT_S": str(MAX_WAIT_S)}
PLACEHOLDER_URL = "http://gateway.invalid"

DOCUMENT = openapi_document(
    Settings(
        _env_file=None,
        api_keys=GATEWAY_ENV["PLOTFARM_API_KEYS"],
        max_wait_s=MAX_WAIT_S,
        public_gateway_url=PLACEHOLDER_URL,
    ),
    keys_enabled=True,
)
CONFIG = schemathesis.Config.from_dict(
    {
        # Credentials for the document's two security schemes; schemathesis also sends none and wrong ones.
        "auth": {"openapi": {"bearerAuth": {"bearer": API_KEY}, "apiKeyHeader": {"api_key": API_KEY}}},
        "generation": {"max-examples": 10},  # fuzzing, per operation; examples and coverage are bounded anyway
        # /execute takes the same body as POST /api/jobs (one validator), and each accepted one waits MAX_WAIT_S.
        "operations": [{"include-path": "/execute", "generation": {"max-examples": 3}}],
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def contract_gateway(stack):
    namespace = f"{stack.namespace}-contract"
    process = stack.start_gateway("gateway-openapi", PLOTFARM_NAMESPACE=namespace, **GATEWAY_ENV)
    try:
        stack.wait_ready(process)
        yield process.url
    finally:
        process.stop()
        stack.processes.pop("gateway-openapi", None)
        asyncio.run(delete_namespace(stack.amqp_url, namespace))


def test_the_gateway_serves_the_document_under_test(contract_gateway):
    served = requests.get(f"{contract_gateway}/api/openapi.json", timeout=10).json()
    assert served["servers"] == [{"url": contract_gateway}]
    assert {**served, "servers": DOCUMENT["servers"]} == DOCUMENT


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_gateway_conforms_to_its_document(case, contract_gateway):
    case.call_and_validate(base_url=contract_gateway, timeout=MAX_WAIT_S + 15)


def test_auth_and_docs_page(contract_gateway):
    assert requests.get(f"{contract_gateway}/api/jobs/{'0' * 32}", timeout=10).status_code == 401
    assert requests.get(f"{contract_gateway}/api/jobs/{'0' * 32}", headers=AUTH, timeout=10).status_code == 404
    # The document and its page are public, keys or not.
    assert requests.get(f"{contract_gateway}/api/openapi.json", timeout=10).status_code == 200
    page = requests.get(f"{contract_gateway}/api/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    bundle = requests.get(f"{contract_gateway}/api/docs/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert requests.get(f"{contract_gateway}/api/docs/package.json", timeout=10).status_code == 404


def _finished(base: str, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = requests.get(f"{base}/api/jobs/{job_id}?wait=10", timeout=30).json()
        if view["status"] in ("done", "failed"):
            return view
    raise AssertionError(f"job {job_id} did not finish")


def test_finished_jobs_conform_to_the_document(stack):
    """Done (two figures, every format) and failed jobs: the job view, inline formats, each file, /execute."""
    base = stack.gateway_url
    code = (
        "import plotly.graph_objects as go\n"
        "print('hello')\n"
        "go.Figure(go.Bar(y=[1, 2])).show()\n"
        "go.Figure(go.Scatter(y=[3, 1]), layout={'title': {'text': 'two'}}).show()\n"
    )
    accepted = requests.post(
        f"{base}/api/jobs",
        json={"code": code, "formats": ["svg", "png", "json", "html"], "width": 400, "height": 300},
        timeout=30,
    )
    assert accepted.status_code == 202, accepted.text
    schema["/api/jobs"]["POST"].validate_response(accepted)
    failed_id = requests.post(f"{base}/api/jobs", json={"code": "1/0"}, timeout=30).json()["job_id"]
    done = _finished(base, accepted.json()["job_id"])
    assert done["status"] == "done" and len(done["figures"]) == 2, done
    failed = _finished(base, failed_id)
    assert failed["status"] == "failed" and failed["error"]["type"] == "ZeroDivisionError"

    get_job = schema["/api/jobs/{job_id}"]["GET"]
    for query in ("", "?include=svg,png,json", "?include=svg&wait=0"):
        for job_id in (done["job_id"], failed_id):
            response = requests.get(f"{base}/api/jobs/{job_id}{query}", timeout=30)
            assert response.status_code == 200
            get_job.validate_response(response)
    inline = requests.get(f"{done['status_url']}?include=svg,png,json", timeout=30).json()
    assert {"svg", "png", "spec"} <= set(inline["figures"][1])

    for fmt in ("svg", "png", "json", "html"):
        operation = schema[f"/api/jobs/{{job_id}}/figures/{{index}}.{fmt}"]["GET"]
        for index in (0, 1):
            response = requests.get(done["figures"][index]["files"][fmt]["url"], timeout=30)
            assert response.status_code == 200, (fmt, response.text[:200])
            operation.validate_response(response)
        for missing in (f"{failed_id}/figures/0.{fmt}", f"{done['job_id']}/figures/2.{fmt}"):
            response = requests.get(f"{base}/api/jobs/{missing}", timeout=30)
            assert response.status_code == 404
            operation.validate_response(response)

    executed = requests.post(f"{base}/execute", json={"code": code, "formats": ["svg", "png"]}, timeout=150)
    assert executed.status_code == 200, executed.text
    schema["/execute"]["POST"].validate_response(executed)
    assert executed.json()["svg"].startswith("<svg") and executed.json()["png"]
    failing = requests.post(f"{base}/execute", json={"code": "1/0"}, timeout=150)
    assert failing.status_code == 200 and failing.json()["svg"] is None
    schema["/execute"]["POST"].validate_response(failing)


def test_the_stack_gateway_describes_itself(stack):
    """The session's own gateway (no keys, the default long poll): an open API, wait up to 120 s."""
    raw = requests.get(f"{stack.gateway_url}/api/openapi.json", timeout=10).json()
    assert raw["servers"] == [{"url": stack.gateway_url}]
    assert raw["paths"]["/api/jobs"]["post"]["security"] == [{}]
    wait = next(p for p in raw["paths"]["/api/jobs/{job_id}"]["get"]["parameters"] if p.get("name") == "wait")
    assert wait["schema"]["maximum"] == 120
    index = requests.get(f"{stack.gateway_url}/", timeout=10)
    schema["/"]["GET"].validate_response(index)
    assert index.json()["openapi"] == f"{stack.gateway_url}/api/openapi.json"
