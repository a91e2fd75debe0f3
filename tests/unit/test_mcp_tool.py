"""The MCP tool ``render_plotly`` against a fake gateway (an aiohttp test server).

The fake speaks the gateway's HTTP API (submit, long poll, figure files) and
records what it was sent. Most tests drive the tool's logic directly; the
last ones go through the real MCP stack over HTTP (uvicorn + the SDK's
``streamable_http_client``), which is where the bearer token comes from.
"""

import asyncio
import base64
import contextlib
import socket

import httpx2
import pytest
import uvicorn
from aiohttp import web
from aiohttp.test_utils import TestServer
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from services.mcp.app import caller_key, create_app
from services.mcp.gateway import GatewayClient
from services.mcp.tool import RenderTool
from shared.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00fake-png-bytes"
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="700" height="450"><text>Example</text></svg>'
TRACEBACK = (
    'Traceback (most recent call last):\n  File "<job>", line 1, in <module>\n    1/0\n'
    "ZeroDivisionError: division by zero\n"
)
PUBLIC = "http://public.example:3000"  # what the gateway puts in its URLs; never reachable from here


class FakeGateway:
    """Programmable stand-in for the gateway. ``submit_answers`` are served first, then 202."""

    def __init__(self):
        self.submissions: list[dict] = []
        self.auth_seen: list[str | None] = []
        self.submit_answers: list[tuple[int, dict, dict]] = []  # (status, body, headers)
        self.outcome = "done"
        self.figures = 1
        self.with_files = True  # the new API: figures carry `files`
        self.has_png = True
        self.stdout = "hello from the job\n"
        self.polls = 0
        self.running_polls = 0  # answer "running" this many times before the outcome

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/jobs", self.submit)
        app.router.add_get("/api/jobs/{job_id}", self.status)
        app.router.add_get(r"/api/jobs/{job_id}/figures/{n:\d+}.{ext}", self.figure)
        app.router.add_get("/readyz", self.readyz)
        return app

    async def readyz(self, _request: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    async def submit(self, request: web.Request) -> web.Response:
        self.auth_seen.append(request.headers.get("Authorization"))
        body = await request.json()
        self.submissions.append(body)
        if self.submit_answers:
            status, payload, headers = self.submit_answers.pop(0)
            return web.json_response(payload, status=status, headers=headers)
        job_id = f"job{len(self.submissions)}"
        return web.json_response(
            {
                "job_id": job_id,
                "status": "queued",
                "status_url": f"{PUBLIC}/api/jobs/{job_id}",
                "viewer_url": f"http://viewer.example/?job={job_id}",
            },
            status=202,
        )

    def _figure(self, job_id: str, n: int, include_svg: bool) -> dict:
        url = f"{PUBLIC}/api/jobs/{job_id}/figures/{n}"
        figure = {"index": n, "url": f"{url}.svg", "bytes": len(SVG)}
        if self.with_files:
            figure["files"] = {"svg": {"url": f"{url}.svg", "bytes": len(SVG)}}
            if self.has_png:
                figure["files"]["png"] = {"url": f"{url}.png", "bytes": len(PNG)}
        if include_svg and not self.with_files:
            figure["svg"] = SVG.replace("Example", f"Figure {n}")
        return figure

    async def status(self, request: web.Request) -> web.Response:
        self.auth_seen.append(request.headers.get("Authorization"))
        self.polls += 1
        job_id = request.match_info["job_id"]
        view = {"job_id": job_id, "viewer_url": f"http://viewer.example/?job={job_id}", "status": self.outcome}
        if self.running_polls > 0:
            self.running_polls -= 1
            return web.json_response({**view, "status": "running"})
        if self.outcome == "running":
            await asyncio.sleep(min(float(request.query.get("wait", 0)), 0.2))
            return web.json_response(view)
        view.update(
            timings={"queued_ms": 3, "run_ms": 9, "svg_ms": 31, "total_ms": 68},
            stdout=self.stdout,
            stderr="",
            packages=[],
            error=None,
            figures=[],
        )
        if self.outcome == "failed":
            view["error"] = {"type": "ZeroDivisionError", "message": "division by zero", "traceback": TRACEBACK}
        else:
            view["figures"] = [
                self._figure(job_id, n, request.query.get("include") == "svg") for n in range(self.figures)
            ]
        return web.json_response(view)

    async def figure(self, request: web.Request) -> web.Response:
        self.auth_seen.append(request.headers.get("Authorization"))
        n, ext = int(request.match_info["n"]), request.match_info["ext"]
        if ext == "png" and self.has_png:
            return web.Response(body=PNG, content_type="image/png")
        if ext == "svg":
            return web.Response(text=SVG.replace("Example", f"Figure {n}"), content_type="image/svg+xml")
        raise web.HTTPNotFound()


class Sleeps:
    """Records the waits instead of sleeping them."""

    def __init__(self):
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def gateway():
    fake = FakeGateway()
    server = TestServer(fake.app())
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()


def make_tool(gateway: FakeGateway, **overrides) -> tuple[RenderTool, Sleeps]:
    mcp = {f"mcp_{name}": value for name, value in overrides.items()}
    settings = Settings(_env_file=None, mcp_gateway_url=gateway.url, mcp_wait_margin_s=5, default_timeout_s=1, **mcp)
    sleeps = Sleeps()
    return RenderTool(settings, GatewayClient(settings, sleep=sleeps)), sleeps


def texts(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def test_success_returns_a_png_image_and_the_svg_as_a_resource(gateway):
    gateway.figures = 2
    tool, _ = make_tool(gateway)
    result = await tool.render("fig.show()", width=640, height=480, scale=2, timeout_s=5)

    assert not result.is_error, texts(result)
    kinds = [block.type for block in result.content]
    assert kinds == ["image", "resource", "image", "resource", "text", "text"]
    image = result.content[0]
    assert image.mime_type == "image/png" and base64.b64decode(image.data) == PNG
    svg = result.content[1].resource
    assert svg.mime_type == "image/svg+xml" and svg.uri == "plotfarm://jobs/job1/figures/0.svg"
    assert svg.text.startswith("<svg") and "Figure 0" in svg.text
    assert "Figure 1" in result.content[3].resource.text
    assert result.content[4].text == "stdout:\nhello from the job\n"
    summary = result.content[5].text
    assert "2 figures" in summary and "http://viewer.example/?job=job1" in summary
    # what reached the gateway: both formats, the sizes, and URLs rewritten onto our gateway address
    assert gateway.submissions == [
        {"code": "fig.show()", "formats": ["png", "svg"], "width": 640, "height": 480, "timeout_s": 5, "scale": 2}
    ]
    await tool.gateway.aclose()


async def test_failed_job_is_an_error_with_type_message_and_traceback(gateway):
    gateway.outcome = "failed"
    tool, _ = make_tool(gateway)
    result = await tool.render("1/0")
    assert result.is_error
    text = texts(result)
    assert "ZeroDivisionError: division by zero" in text
    assert "Traceback (most recent call last)" in text and "1/0" in text
    assert "stdout:\nhello from the job" in text
    assert "http://viewer.example/?job=job1" in text
    await tool.gateway.aclose()


async def test_bearer_token_is_passed_to_the_gateway(gateway):
    tool, _ = make_tool(gateway)
    result = await tool.render("fig.show()", api_key="secret-key")
    assert not result.is_error
    assert gateway.auth_seen and set(gateway.auth_seen) == {"Bearer secret-key"}  # submit, poll and figures
    await tool.gateway.aclose()


def test_caller_key_reads_bearer_or_x_api_key():
    assert caller_key({"Authorization": "Bearer abc "}) == "abc"
    assert caller_key({"authorization": "bearer abc"}) == "abc"
    assert caller_key({"X-API-Key": "xyz"}) == "xyz"
    assert caller_key({"Authorization": "Basic Zm9v"}) is None
    assert caller_key(None) is None and caller_key({}) is None


async def test_429_and_503_are_retried_after_retry_after(gateway):
    gateway.submit_answers = [
        (429, {"error": "too many jobs; retry in 2 s"}, {"Retry-After": "2"}),
        (503, {"error": "the job was not accepted: broker down; retry later"}, {"Retry-After": "3"}),
    ]
    tool, sleeps = make_tool(gateway)
    result = await tool.render("fig.show()")
    assert not result.is_error, texts(result)
    assert sleeps.waits[:2] == [2.0, 3.0]
    assert len(gateway.submissions) == 3
    await tool.gateway.aclose()


async def test_still_busy_after_the_retries_is_an_error_saying_so(gateway):
    gateway.submit_answers = [(429, {"error": "too many jobs; retry in 100 s"}, {"Retry-After": "100"})] * 5
    tool, sleeps = make_tool(gateway, busy_retries=2, max_retry_after_s=7)
    result = await tool.render("fig.show()")
    assert result.is_error
    assert "busy" in texts(result) and "100 s" in texts(result)
    assert sleeps.waits == [7.0, 7.0]  # Retry-After honoured, capped per wait
    assert len(gateway.submissions) == 3
    await tool.gateway.aclose()


async def test_refusals_say_what_to_fix(gateway):
    gateway.submit_answers = [
        (401, {"error": "a valid API key is required (Authorization: Bearer <key> or X-API-Key)"}, {}),
        (400, {"error": "invalid job request", "details": [{"field": "width", "message": "too small"}]}, {}),
    ]
    tool, _ = make_tool(gateway)
    unauthorized = await tool.render("fig.show()")
    assert unauthorized.is_error and "Authorization: Bearer <key>" in texts(unauthorized)
    invalid = await tool.render("fig.show()")
    assert invalid.is_error and "width: too small" in texts(invalid)
    await tool.gateway.aclose()


async def test_a_job_still_running_at_the_deadline_is_an_error_with_its_links(gateway):
    gateway.outcome = "running"
    tool, _ = make_tool(gateway)
    tool.settings.mcp_wait_margin_s = 0.5
    tool.settings.default_timeout_s = 0.1
    progress = []

    async def report(done, total, message):
        progress.append(message)

    result = await tool.render("while True: pass", progress=report)
    assert result.is_error and "still running" in texts(result)
    assert f"{PUBLIC}/api/jobs/job1" in texts(result)
    assert progress and progress[0] == "job job1 running"
    await tool.gateway.aclose()


async def test_an_unreachable_gateway_is_an_error():
    settings = Settings(_env_file=None, mcp_gateway_url="http://127.0.0.1:1", mcp_busy_retries=1)
    sleeps = Sleeps()
    tool = RenderTool(settings, GatewayClient(settings, sleep=sleeps))
    result = await tool.render("fig.show()")
    assert result.is_error and "unavailable" in texts(result)
    assert sleeps.waits == [1.0]
    await tool.gateway.aclose()


# --- through the MCP protocol, over HTTP -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def mcp_server(gateway: FakeGateway):
    port = _free_port()
    settings = Settings(
        _env_file=None, mcp_host="127.0.0.1", mcp_port=port, mcp_gateway_url=gateway.url, mcp_wait_margin_s=5
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the MCP server did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def mcp_session(base: str, headers: dict | None = None):
    async with httpx2.AsyncClient(headers=headers or {}, timeout=30) as http:
        async with streamable_http_client(f"{base}/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def test_over_mcp_the_bearer_token_reaches_the_gateway_and_health_answers(gateway):
    async with mcp_server(gateway) as base:
        async with mcp_session(base, {"Authorization": "Bearer agent-key"}) as session:
            tools = (await session.list_tools()).tools
            assert [t.name for t in tools] == ["render_plotly", "render_figure"]
            schema = tools[0].input_schema
            assert schema["required"] == ["code"]
            assert set(schema["properties"]) == {"code", "files", "variables", "width", "height", "scale", "timeout_s"}
            assert "fig.show()" in tools[0].description and "numpy" in tools[0].description
            assert "pd.read_csv" in tools[0].description
            figure_schema = tools[1].input_schema
            assert figure_schema["required"] == ["figure"]
            assert set(figure_schema["properties"]) == {"figure", "width", "height", "scale"}

            result = await session.call_tool("render_plotly", {"code": "fig.show()", "scale": 2})
            assert not result.is_error, texts(result)
            assert [b.type for b in result.content] == ["image", "resource", "text", "text"]
            assert result.content[1].resource.mime_type == "image/svg+xml"
            assert set(gateway.auth_seen) == {"Bearer agent-key"}

            refused = await session.call_tool("render_plotly", {"code": "x", "scale": 11})
            assert refused.is_error  # the schema's range, checked before the gateway is asked
            assert len(gateway.submissions) == 1

        async with httpx2.AsyncClient() as http:
            assert (await http.get(f"{base}/healthz")).json() == {"status": "alive"}
            ready = await http.get(f"{base}/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"gateway": "ok"}


async def test_over_mcp_progress_is_reported_while_the_job_runs(gateway):
    gateway.running_polls = 2
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress <= total, message))

    async with mcp_server(gateway) as base:
        async with mcp_session(base) as session:
            result = await session.call_tool("render_plotly", {"code": "fig.show()"}, progress_callback=on_progress)
    assert not result.is_error
    assert seen == [(True, "job job1 running")] * 2


async def test_over_mcp_a_failed_job_is_an_error_result(gateway):
    gateway.outcome = "failed"
    async with mcp_server(gateway) as base:
        async with mcp_session(base) as session:
            result = await session.call_tool("render_plotly", {"code": "1/0"})
    assert result.is_error
    assert "ZeroDivisionError: division by zero" in texts(result) and "Traceback" in texts(result)
    assert gateway.auth_seen[0] is None  # no key sent, none invented


# --- DNS rebinding: a foreign Host is refused, on any listen address ------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@contextlib.asynccontextmanager
async def mcp_server_on_all_addresses(gateway: FakeGateway, **fields):
    """The app as configured to listen on 0.0.0.0 (the containers' setting), served on loopback for the test."""
    port = _free_port()
    settings = Settings(_env_file=None, mcp_host="0.0.0.0", mcp_port=port, mcp_gateway_url=gateway.url, **fields)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the MCP server did not start"
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _initialize(port: int, headers: dict) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(
            f"http://127.0.0.1:{port}/mcp",
            json=INITIALIZE,
            headers={"Accept": "application/json, text/event-stream", **headers},
        )


async def test_a_foreign_host_is_refused_even_on_all_addresses(gateway):
    async with mcp_server_on_all_addresses(gateway) as port:
        for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", f"127.0.0.1.nip.io:{port}"):
            assert (await _initialize(port, {"Host": host})).status_code == 421, host
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
            assert (await _initialize(port, {"Host": host})).status_code == 200, host
        page = {"Host": f"localhost:{port}", "Origin": "http://evil.example"}
        assert (await _initialize(port, page)).status_code == 403  # a page of another site, through a browser
        assert (await _initialize(port, {**page, "Origin": f"http://localhost:{port}"})).status_code == 200
        async with httpx2.AsyncClient() as http:  # probes send whatever Host they like: health stays open
            assert (await http.get(f"http://127.0.0.1:{port}/healthz", headers={"Host": "10.1.2.3:3001"})).is_success


async def test_allowed_hosts_come_from_the_setting(gateway):
    async with mcp_server_on_all_addresses(gateway, mcp_allowed_hosts="mcp, plotfarm-mcp:3001") as port:
        assert (await _initialize(port, {"Host": f"mcp:{port}"})).status_code == 200
        assert (await _initialize(port, {"Host": "mcp"})).status_code == 200
        assert (await _initialize(port, {"Host": "plotfarm-mcp:3001"})).status_code == 200
        assert (await _initialize(port, {"Host": "plotfarm-mcp:3002"})).status_code == 421
        assert (await _initialize(port, {"Host": f"localhost:{port}"})).status_code == 421  # not listed here


async def test_files_and_variables_go_to_the_gateway_as_the_request_names_them(gateway):
    tool, _ = make_tool(gateway)
    result = await tool.render(
        "print(open('a.csv').read())", files={"a.csv": "x,y\n1,2\n"}, variables={"n": [1, 2]}, scale=2
    )
    assert not result.is_error, texts(result)
    sent = gateway.submissions[-1]
    assert sent["files"] == {"a.csv": {"text": "x,y\n1,2\n"}} and sent["variables"] == {"n": [1, 2]}
    assert sent["code"].startswith("print") and sent["scale"] == 2 and sent["formats"] == ["png", "svg"]
    await tool.render("x")
    assert "files" not in gateway.submissions[-1] and "variables" not in gateway.submissions[-1]
    await tool.gateway.aclose()


async def test_render_figure_sends_the_figure_and_answers_as_render_plotly(gateway):
    tool, _ = make_tool(gateway)
    figure = {"data": [{"type": "bar", "y": [1, 3]}], "layout": {}}
    result = await tool.render_figure(figure, width=300)
    assert not result.is_error, texts(result)
    assert gateway.submissions[-1] == {"figure": figure, "formats": ["png", "svg"], "width": 300}
    assert [b.type for b in result.content][:2] == ["image", "resource"]
    gateway.outcome = "failed"
    failed = await tool.render_figure([figure, figure])
    assert failed.is_error and "The figure could not be drawn" in texts(failed)
    assert gateway.submissions[-1]["figure"] == [figure, figure]
    await tool.gateway.aclose()


async def test_over_mcp_render_figure_and_files_arrive(gateway):
    async with mcp_server(gateway) as base:
        async with mcp_session(base) as session:
            figure = {"data": [{"type": "scatter", "y": [1, 2]}]}
            result = await session.call_tool("render_figure", {"figure": figure, "scale": 1.5})
            assert not result.is_error, texts(result)
            assert gateway.submissions[-1]["figure"] == figure and gateway.submissions[-1]["scale"] == 1.5
            result = await session.call_tool(
                "render_plotly", {"code": "x", "files": {"d.json": "[1]"}, "variables": {"k": {"a": None}}}
            )
            assert not result.is_error, texts(result)
            assert gateway.submissions[-1]["files"] == {"d.json": {"text": "[1]"}}
            assert gateway.submissions[-1]["variables"] == {"k": {"a": None}}
            bad = await session.call_tool("render_plotly", {"code": "x", "files": {"../x": "a"}})
            assert bad.is_error  # the tool's own schema refuses the name before any job
            assert "files" not in gateway.submissions[-1] or "../x" not in gateway.submissions[-1]["files"]
