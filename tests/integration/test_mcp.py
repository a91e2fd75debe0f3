"""The MCP service as an agent uses it: the SDK's own client, the real gateway, renderers and Pyodide."""

import base64
import contextlib

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.support import ServiceProcess, free_port, wait_http_ok

pytestmark = pytest.mark.integration

PX_CODE = """\
import plotly.express as px
df = px.data.iris()
print("rows", len(df))
fig = px.scatter(df, x="sepal_width", y="sepal_length", color="species", title="Iris via MCP")
fig.show()
"""


def start_mcp(stack, name: str, gateway_url: str) -> ServiceProcess:
    port = free_port()
    env = stack.service_env(PLOTFARM_MCP_HOST="127.0.0.1", PLOTFARM_MCP_PORT=port, PLOTFARM_MCP_GATEWAY_URL=gateway_url)
    process = ServiceProcess(name, "services.mcp", env, stack.log_dir / f"{name}.log").start()
    process.url = f"http://127.0.0.1:{port}"
    stack.processes[name] = process  # its log is shown when a test fails
    wait_http_ok(f"{process.url}/readyz", 60, process)
    return process


@pytest.fixture(scope="module")
def mcp_url(stack):
    process = start_mcp(stack, "mcp", stack.gateway_url)
    try:
        yield f"{process.url}/mcp"
    finally:
        assert process.stop() == 0, process.tail()
        stack.processes.pop("mcp", None)


@contextlib.asynccontextmanager
async def session(url: str, api_key: str | None = None):
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=180)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as client:
                await client.initialize()
                yield client


def texts(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def test_render_plotly_returns_png_and_svg(mcp_url):
    async with session(mcp_url) as client:
        result = await client.call_tool("render_plotly", {"code": PX_CODE, "width": 800, "height": 500, "scale": 2})
    assert not result.is_error, texts(result)
    images = [b for b in result.content if b.type == "image"]
    resources = [b for b in result.content if b.type == "resource"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG\r\n\x1a\n")
    assert len(resources) == 1
    svg = resources[0].resource
    assert svg.mime_type == "image/svg+xml" and svg.text.startswith("<svg") and "Iris via MCP" in svg.text
    assert svg.uri.startswith("plotfarm://jobs/") and svg.uri.endswith("/figures/0.svg")
    assert "stdout:\nrows 150" in texts(result)
    assert "?job=" in texts(result)


async def test_failing_code_is_an_error_result_with_its_traceback(mcp_url):
    async with session(mcp_url) as client:
        result = await client.call_tool("render_plotly", {"code": "import plotly\nx = 1/0"})
    assert result.is_error
    text = texts(result)
    assert "ZeroDivisionError: division by zero" in text
    assert "Traceback" in text and "x = 1/0" in text


async def test_bearer_token_of_the_mcp_request_is_the_gateway_key(stack):
    keyed = stack.start_gateway("gateway-mcp-keys", PLOTFARM_API_KEYS="agents=mcp-key")
    mcp = None
    try:
        stack.wait_ready(keyed)
        mcp = start_mcp(stack, "mcp-keys", keyed.url)
        url = f"{mcp.url}/mcp"
        async with session(url) as client:
            refused = await client.call_tool("render_plotly", {"code": "1/0"})
        assert refused.is_error and "Authorization: Bearer <key>" in texts(refused)
        async with session(url, api_key="mcp-key") as client:
            ran = await client.call_tool("render_plotly", {"code": "import plotly\n1/0"})
        # accepted with the key: the job ran and failed in Python, not at the door
        assert ran.is_error and "ZeroDivisionError" in texts(ran), texts(ran)
    finally:
        if mcp is not None:
            mcp.stop()
            stack.processes.pop("mcp-keys", None)
        keyed.stop()
        stack.processes.pop("gateway-mcp-keys", None)


async def test_warnings_are_returned_as_text(mcp_url):
    code = "import plotly.graph_objects as go\ngo.Figure(go.Scattergl(y=[1, 3, 2])).show()"
    async with session(mcp_url) as client:
        result = await client.call_tool("render_plotly", {"code": code})
    assert not result.is_error, texts(result)
    assert "warning: figure 1: scattergl is drawn with WebGL" in texts(result)
