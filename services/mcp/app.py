"""The MCP server: two tools (code in; a figure's JSON in), served with Streamable HTTP at ``/mcp``, plus health
routes.

SDK pieces used (``mcp`` 2.x): ``MCPServer`` (FastMCP's successor) with
``@server.tool`` and ``@server.custom_route``; ``Context.headers`` (the HTTP
headers of the MCP request carrying the tool call) for the caller's bearer
token; ``Context.report_progress`` while the job waits; and
``MCPServer.streamable_http_app`` (a Starlette app) in stateless mode, so any
number of these services can stand behind one address with no session
affinity.
"""

import inspect
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.mcp.gateway import GatewayClient
from services.mcp.tool import RenderTool, figure_tool_description, tool_description
from shared.settings import Settings
from shared.vocabulary import FILE_NAME_PATTERN, job_request_model

log = structlog.get_logger(__name__)

MCP_PATH = "/mcp"
INSTRUCTIONS = (
    "plotfarm renders Plotly figures from Python code in a sandbox (no network, no installs). "
    "Call render_plotly with code that builds a figure and calls fig.show() (with `files` and `variables` for "
    "your data); call render_figure with a figure's JSON to draw it as it is. You get a PNG to look at and the "
    "SVG as a resource."
)


def caller_key(headers: Mapping[str, str] | None) -> str | None:
    """The API key the MCP client sent: ``Authorization: Bearer <key>``, or ``X-API-Key``."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return lowered.get("x-api-key", "").strip() or None


# The job request's fields the tool takes (formats: it always asks for a PNG and the SVG), as plain
# JSON types: the request's strict unions (a float or an int) would put their bounds where JSON
# Schema does not look, and agents read this schema.
# `files` differ on purpose: an agent holds text (CSV, JSON), so a file is its text, not {"text": ...}.
FileName = Annotated[str, Field(pattern=FILE_NAME_PATTERN)]
TOOL_FIELDS = {
    "code": str,
    "files": dict[FileName, str] | None,
    "variables": dict[str, Any] | None,
    "width": int | None,
    "height": int | None,
    "scale": float | None,
    "timeout_s": float | None,
}
FIGURE_TOOL_FIELDS = {
    "figure": dict[str, Any] | list[dict[str, Any]],
    "width": int | None,
    "height": int | None,
    "scale": float | None,
}


def tool_parameters(settings: Settings, fields: dict[str, Any] = TOOL_FIELDS) -> list[inspect.Parameter]:
    """A tool's parameters: the job request's fields, their bounds and descriptions as the gateway has them."""
    request = job_request_model(settings)
    parameters = []
    for name, kind in fields.items():
        field = request.model_fields[name]
        if name == "code":  # required here; an agent learns the size limit in characters (the gateway counts bytes)
            field = FieldInfo.merge_field_infos(
                field, Field(min_length=1, max_length=settings.max_code_bytes), default=PydanticUndefined
            )
        if name == "files":
            field = FieldInfo.merge_field_infos(
                field,
                Field(
                    description=f"Input files by name, each its text (CSV, JSON, ...), for `code` to read from its "
                    f'working directory (`pd.read_csv("sales.csv")`). At most {settings.max_input_files} files '
                    f"and {settings.max_input_bytes} bytes of UTF-8 with `variables`; a name is one plain file name."
                ),
            )
        if name == "variables":
            kind = field.annotation  # the names' pattern is in the request's own type
        if name == "figure":  # required here: this tool runs no code
            field = Field(
                description="A Plotly figure's JSON (`data`, `layout`, `frames`: what `fig.to_json()` writes), or a "
                f"list of at most {settings.max_figures} of them.",
            )
        default = inspect.Parameter.empty if field.is_required() else field.default
        annotation = Annotated[kind, field]
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return parameters


def _signature(settings: Settings, fields: dict[str, Any]) -> inspect.Signature:
    """What the SDK reads a tool's parameters from: the job request's own (shared/vocabulary.py), with this
    service's limits."""
    return inspect.Signature(
        [
            *tool_parameters(settings, fields),
            inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
        ],
        return_annotation=CallToolResult,
    )


def _annotations(title: str) -> ToolAnnotations:
    return ToolAnnotations(
        title=title, read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=False
    )


def build_server(tool: RenderTool) -> MCPServer:
    server = MCPServer(
        "plotfarm",
        title="plotfarm",
        description="Sandboxed Plotly rendering: Python code in, PNG and SVG out.",
        instructions=INSTRUCTIONS,
        version="0.1.0",
    )

    def add_tool(name: str, title: str, description: str, fields, render) -> None:
        """One tool that submits a job through ``render`` (a method of RenderTool), its parameters from ``fields``."""

        async def call(ctx: Context, **arguments) -> CallToolResult:
            async def progress(done: float, total: float, message: str) -> None:
                await ctx.report_progress(done, total, message)

            return await render(**arguments, api_key=caller_key(ctx.headers), progress=progress)

        call.__name__ = name
        call.__signature__ = _signature(tool.settings, fields)
        server.tool(name=name, title=title, description=description, annotations=_annotations(title))(call)

    add_tool("render_plotly", "Render Plotly figures", tool_description(tool.settings), TOOL_FIELDS, tool.render)
    add_tool(
        "render_figure",
        "Render a Plotly figure's JSON",
        figure_tool_description(tool.settings),
        FIGURE_TOOL_FIELDS,
        tool.render_figure,
    )

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    @server.custom_route("/readyz", methods=["GET"])
    async def readyz(_request: Request) -> JSONResponse:
        reason = await tool.gateway.ready()
        return JSONResponse(
            {"ready": reason is None, "checks": {"gateway": reason or "ok"}}, status_code=200 if reason is None else 503
        )

    return server


def transport_security(allowed_hosts: str) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding protection, on whatever address the server listens on.

    The SDK turns it on by itself only when it listens on loopback; on ``0.0.0.0`` (every
    container) it would be off, and a web page whose name an attacker re-points at this
    address could drive the tool from a victim's browser. So ``/mcp`` answers only the
    Host names in ``PLOTFARM_MCP_ALLOWED_HOSTS`` (421 otherwise), and a browser's request
    only from those hosts' own origins (403 otherwise; a client that sends no Origin is not
    a page and passes). A name without a port is allowed on any port, and bare (port 80).
    ``/healthz`` and ``/readyz`` are not behind it: probes come by IP address.
    """
    hosts, origins = [], []
    for entry in filter(None, (part.strip() for part in allowed_hosts.split(","))):
        name, port = _host_and_port(entry)
        forms = [entry] if port else [name, f"{name}:*"]
        hosts += forms
        origins += [f"{scheme}://{form}" for form in forms for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def _host_and_port(entry: str) -> tuple[str, str]:
    """``name:port`` (or ``[v6]:port``, ``name:*``) split; a bare name or ``[v6]`` has port ``""``."""
    if entry.startswith("["):
        name, _, rest = entry.partition("]")
        return f"{name}]", rest.removeprefix(":")
    name, _, port = entry.partition(":")
    return name, port


def create_app(settings: Settings, gateway: GatewayClient | None = None) -> Starlette:
    """The ASGI app: ``/mcp`` (Streamable HTTP, stateless), ``/healthz``, ``/readyz``."""
    gateway = gateway or GatewayClient(settings)
    server = build_server(RenderTool(settings, gateway))
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=transport_security(settings.mcp_allowed_hosts),
    )
    sdk_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(starlette_app: Starlette):
        async with sdk_lifespan(starlette_app):  # the SDK's session manager
            try:
                yield
            finally:
                await gateway.aclose()

    app.router.lifespan_context = lifespan
    return app
