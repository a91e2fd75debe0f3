"""A viewer restricted by API key shows each tenant only its own jobs (unit level)."""

import asyncio

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from services.viewer.access import KEY_COOKIE
from services.viewer.app import create_app
from services.viewer.live import LiveJobs
from shared.assets import AssetStore
from shared.auth import ApiKeys
from shared.messages import JobQueued, RenderResult, utcnow
from shared.settings import Settings


class Follower:
    def __init__(self):
        self.caught_up, self.connected = asyncio.Event(), asyncio.Event()
        self.caught_up.set()
        self.connected.set()

    def not_ready_because(self):
        return None


def finished(job_id: str, tenant: str) -> list:
    return [
        JobQueued(job_id=job_id, code="x", submitted_at=utcnow(), tenant=tenant),
        RenderResult(job_id=job_id, status="done", figures=["<svg/>"], tenant=tenant),
    ]


@pytest.fixture
async def viewer():
    live = LiveJobs(history=100, max_bytes=10**6)
    for offset, event in enumerate(finished("a1", "alpha") + finished("b1", "beta")):
        live.apply(event, offset)
    keys = ApiKeys([("alpha", "alpha-key"), ("beta", "beta-key")])
    settings = Settings(_env_file=None, viewer_require_key=True)
    app = create_app(settings, live, Follower(), AssetStore(settings), keys)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, live
    await client.close()


async def test_without_a_key_the_viewer_refuses(viewer):
    client, _ = viewer
    assert (await client.get("/")).status == 401
    assert (await client.get("/api/jobs/a1")).status == 401
    assert (await client.get("/healthz")).status == 200


async def test_key_in_the_url_becomes_a_cookie_and_leaves_the_address(viewer):
    client, _ = viewer
    response = await client.get("/?key=alpha-key&job=a1", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/?job=a1"
    cookie = response.cookies[KEY_COOKIE]
    assert cookie.value == "alpha-key" and cookie["httponly"] and cookie["samesite"] == "Strict"


async def test_each_tenant_sees_only_its_own_jobs(viewer):
    client, live = viewer
    client.session.cookie_jar.update_cookies({KEY_COOKIE: "alpha-key"})
    assert (await client.get("/api/jobs/a1")).status == 200
    assert (await client.get("/api/jobs/b1")).status == 404
    async with client.ws_connect("/ws") as ws:
        hello = await ws.receive_json(timeout=5)
        assert [job["job_id"] for job in hello["jobs"]] == ["a1"]
        for offset, event in enumerate(finished("b2", "beta") + finished("a2", "alpha"), start=10):
            live.apply(event, offset)
        pushed = {(await ws.receive_json(timeout=5))["job"]["job_id"] for _ in range(2)}
    assert pushed == {"a2"}


async def test_an_unrestricted_viewer_shows_everything():
    live = LiveJobs(history=100, max_bytes=10**6)
    for offset, event in enumerate(finished("a1", "alpha") + finished("b1", "beta")):
        live.apply(event, offset)
    settings = Settings(_env_file=None, viewer_require_key=False)  # the operator's own view, by choice
    app = create_app(settings, live, Follower(), AssetStore(settings), ApiKeys([("alpha", "k")]))
    async with TestClient(TestServer(app)) as client:
        async with client.ws_connect("/ws") as ws:
            hello = await ws.receive_json(timeout=5)
    assert {job["job_id"] for job in hello["jobs"]} == {"a1", "b1"}


# ---- the default follows the keys; no foreign origins, no open redirects, Secure behind TLS ----

WS_HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


async def viewer_client(keys=None, **fields) -> TestClient:
    live = LiveJobs(history=100, max_bytes=10**6)
    for offset, event in enumerate(finished("a1", "alpha") + finished("b1", "beta")):
        live.apply(event, offset)
    if keys is None:
        keys = ApiKeys([("alpha", "alpha-key"), ("beta", "beta-key")])
    settings = Settings(_env_file=None, **fields)
    client = TestClient(TestServer(create_app(settings, live, Follower(), AssetStore(settings), keys)))
    await client.start_server()
    return client


async def test_with_keys_configured_the_viewer_requires_one_by_default():
    client = await viewer_client()
    try:
        assert (await client.get("/")).status == 401
        assert (await client.get("/api/jobs/a1")).status == 401
        assert (await client.get("/api/jobs/a1/figures/0.svg")).status == 401
        assert (await client.get("/ws", headers=WS_HANDSHAKE)).status == 401
        client.session.cookie_jar.update_cookies({KEY_COOKIE: "beta-key"})
        async with client.ws_connect("/ws") as ws:
            hello = await ws.receive_json(timeout=5)
        assert [job["job_id"] for job in hello["jobs"]] == ["b1"]
    finally:
        await client.close()


async def test_without_keys_the_viewer_is_open_and_an_explicit_false_opens_it_with_a_warning():
    open_client = await viewer_client(keys=ApiKeys([]))
    try:
        assert (await open_client.get("/api/jobs/a1")).status == 200
    finally:
        await open_client.close()
    with structlog.testing.capture_logs() as logs:
        client = await viewer_client(viewer_require_key=False)
    try:
        assert (await client.get("/api/jobs/b1")).status == 200
    finally:
        await client.close()
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warnings and "PLOTFARM_VIEWER_REQUIRE_KEY" in warnings[0]["event"], logs


def own_origin(client: TestClient, scheme: str = "http") -> str:
    return f"{scheme}://{client.host}:{client.port}"


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "",
        "http://{host}.evil.example",
        "http://evil.example/{host}",
        "https://{host}",  # another scheme is another origin
        "http://{host}:1",
        "javascript:alert(1)",
        "http://[::1",
    ],
)
async def test_the_websocket_refuses_other_origins_before_the_upgrade(origin):
    client = await viewer_client(viewer_require_key=True)
    client.session.cookie_jar.update_cookies({KEY_COOKIE: "alpha-key"})
    try:
        origin = origin.format(host=f"{client.host}:{client.port}")
        response = await client.get("/ws", headers={**WS_HANDSHAKE, "Origin": origin})
        assert response.status == 403, await response.text()
        assert "origin" in (await response.json())["error"].lower()
        assert "Upgrade" not in response.headers
    finally:
        await client.close()


async def test_the_websocket_takes_its_own_and_configured_origins():
    client = await viewer_client(
        viewer_require_key=True,
        public_viewer_url="https://viewer.example.com",
        viewer_allowed_origins="https://ops.example.com, http://localhost:8080",
        trusted_proxies="127.0.0.1",
    )
    client.session.cookie_jar.update_cookies({KEY_COOKIE: "alpha-key"})
    try:
        allowed = [
            ({"Origin": own_origin(client)}, "its own"),
            ({"Origin": own_origin(client).upper().replace("HTTP://", "http://")}, "hosts are case-insensitive"),
            ({}, "no Origin: not a browser, and the key rules still apply"),
            ({"Origin": "https://viewer.example.com"}, "PLOTFARM_PUBLIC_VIEWER_URL"),
            ({"Origin": "https://viewer.example.com:443"}, "with its default port"),
            ({"Origin": "https://ops.example.com"}, "PLOTFARM_VIEWER_ALLOWED_ORIGINS"),
            ({"Origin": "http://localhost:8080"}, "PLOTFARM_VIEWER_ALLOWED_ORIGINS"),
            ({"Origin": own_origin(client, "https"), "X-Forwarded-Proto": "https"}, "TLS at a trusted proxy"),
        ]
        for headers, why in allowed:
            async with client.ws_connect("/ws", headers=headers) as ws:
                assert (await ws.receive_json(timeout=5))["type"] == "hello", why
        refused = {"Origin": own_origin(client, "https")}  # no X-Forwarded-Proto: this request came over http
        assert (await client.get("/ws", headers={**WS_HANDSHAKE, **refused})).status == 403
    finally:
        await client.close()


async def test_an_untrusted_peer_cannot_claim_https():
    client = await viewer_client(viewer_require_key=True)
    client.session.cookie_jar.update_cookies({KEY_COOKIE: "alpha-key"})
    try:
        headers = {**WS_HANDSHAKE, "Origin": own_origin(client, "https"), "X-Forwarded-Proto": "https"}
        assert (await client.get("/ws", headers=headers)).status == 403
    finally:
        await client.close()


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "/%2F%2Fevil.example",
        "/%2f%2fevil.example",
        "/%5C%5Cevil.example",
        "/%5Cevil.example",
        "/.//evil.example",
        "/%09/evil.example",
        "/http://evil.example",
        "/api/jobs/a1",
    ],
)
async def test_the_key_redirect_stays_on_this_server(path):
    from yarl import URL

    client = await viewer_client(viewer_require_key=True)
    try:
        raw = URL(f"http://{client.host}:{client.port}{path}?key=alpha-key&job=a1", encoded=True)
        assert raw.path.startswith("/") and raw.host == client.host
        response = await client.session.get(raw, allow_redirects=False)
        assert response.status == 303
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith(("//", "/\\")), location
        target = URL("http://viewer.example/").join(URL(location))
        assert target.host == "viewer.example" and target.query.get("job") == "a1", location
        assert "key" not in target.query
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("trusted", "forwarded_proto", "secure"),
    [("", None, False), ("127.0.0.1", "https", True), ("", "https", False), ("127.0.0.0/8", "http", False)],
)
async def test_the_key_cookie_is_secure_when_the_request_came_over_tls(trusted, forwarded_proto, secure):
    client = await viewer_client(viewer_require_key=True, trusted_proxies=trusted)
    try:
        headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
        response = await client.get("/?key=alpha-key", headers=headers, allow_redirects=False)
        assert response.status == 303
        assert bool(response.cookies[KEY_COOKIE]["secure"]) is secure
    finally:
        await client.close()
