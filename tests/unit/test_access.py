"""API keys, tenants and rate limits at the gateway (fake broker; unit level)."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.access import RateLimiter
from services.gateway.app import BROKER, INDEX, create_app
from shared.auth import ApiKeys, _parse_entry
from shared.jobs import JobIndex
from shared.messages import RenderResult
from shared.settings import Settings
from tests.unit.test_gateway_app import FakeBroker, FakeFollower


@pytest.fixture
async def client_for():
    clients = []

    async def make(**settings):
        app = create_app(Settings(_env_file=None, **settings), FakeBroker(), JobIndex(10**6), FakeFollower())
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client, app

    yield make
    for client in clients:
        await client.close()


def test_key_entries_name_their_tenant_or_hash_the_key():
    assert _parse_entry("acme=s3cret") == ("acme", "s3cret")
    tenant, key = _parse_entry("bare-key")
    assert key == "bare-key" and tenant.startswith("key-") and "bare" not in tenant
    assert _parse_entry("# comment") is None and _parse_entry("  ") is None


def test_keys_file_and_variable_combine(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# tenants\nbeta=b-key\n")
    keys = ApiKeys.from_settings(Settings(_env_file=None, api_keys="alpha=a-key", api_keys_file=keys_file))
    assert keys.tenant_for("a-key") == "alpha" and keys.tenant_for("b-key") == "beta"
    assert keys.tenant_for("wrong") is None and keys.tenant_for(None) is None


async def test_without_keys_the_api_is_open(client_for):
    client, _ = await client_for()
    assert (await client.post("/api/jobs", json={"code": "x"})).status == 202


async def test_keys_required_when_configured(client_for):
    client, _ = await client_for(api_keys="alpha=a-key")
    response = await client.post("/api/jobs", json={"code": "x"})
    assert response.status == 401 and "API key" in (await response.json())["error"]
    assert (await client.post("/api/jobs", json={"code": "x"}, headers={"X-API-Key": "nope"})).status == 401
    assert (await client.get("/api/jobs/whatever")).status == 401
    ok = await client.post("/api/jobs", json={"code": "x"}, headers={"Authorization": "Bearer a-key"})
    assert ok.status == 202
    assert (await client.get("/healthz")).status == 200  # health stays public


async def test_tenant_comes_from_the_key_and_tenants_see_only_their_jobs(client_for):
    client, app = await client_for(api_keys="alpha=a-key,beta=b-key")
    broker = app[BROKER]
    alpha, beta = {"X-API-Key": "a-key"}, {"X-API-Key": "b-key"}
    job_id = (await (await client.post("/api/jobs", json={"code": "x"}, headers=alpha)).json())["job_id"]
    assert broker.jobs[-1].tenant == "alpha"
    # A client cannot choose its tenant: the field is refused outright.
    assert (await client.post("/api/jobs", json={"code": "x", "tenant": "beta"}, headers=alpha)).status == 400
    index = app[INDEX]
    index.apply(RenderResult(job_id=job_id, status="done", figures=["<svg/>"], tenant="alpha"))
    assert (await client.get(f"/api/jobs/{job_id}", headers=alpha)).status == 200
    assert (await client.get(f"/api/jobs/{job_id}", headers=beta)).status == 404
    assert (await client.get(f"/api/jobs/{job_id}/figures/0.svg", headers=beta)).status == 404


async def test_submissions_are_rate_limited_with_retry_after(client_for):
    client, _ = await client_for(rate_limit_per_minute=6, rate_limit_burst=2)
    statuses = [(await client.post("/api/jobs", json={"code": "x"})).status for _ in range(2)]
    assert statuses == [202, 202]
    limited = await client.post("/api/jobs", json={"code": "x"})
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert (await client.get("/api/jobs/unknown")).status == 404  # reads are not limited


def test_token_bucket_refills_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.retry_after("k") for _ in range(3)] == [0, 0, 1]
    now[0] += 1.0
    assert limiter.retry_after("k") == 0
    assert limiter.retry_after("other") == 0  # callers are limited separately
    assert RateLimiter(per_minute=0, burst=1).retry_after("k") == 0


async def test_another_tenants_job_is_404_at_once_even_with_wait(client_for):
    """No existence oracle: ?wait= on another tenant's job answers at once, as for an unknown id."""
    import asyncio
    import time

    client, _ = await client_for(api_keys="alpha=a-key,beta=b-key")
    alpha, beta = {"X-API-Key": "a-key"}, {"X-API-Key": "b-key"}
    job_id = (await (await client.post("/api/jobs", json={"code": "x"}, headers=alpha)).json())["job_id"]
    unknown_id = "0" * 32
    answers = {}
    for name, asked in (("theirs", job_id), ("unknown", unknown_id)):
        started = time.monotonic()
        response = await asyncio.wait_for(client.get(f"/api/jobs/{asked}?wait=5", headers=beta), 3)
        answers[name] = (response.status, (await response.json())["error"].replace(asked, "ID"))
        assert time.monotonic() - started < 1, name
    assert answers["theirs"] == answers["unknown"] and answers["theirs"][0] == 404
