"""plotfarm for AI agents: an MCP server with one tool, ``render_plotly``.

Built on the official MCP Python SDK (``mcp``; its ``MCPServer``, formerly
FastMCP) and served over Streamable HTTP at ``/mcp``. It is a thin client of
the gateway's HTTP API and nothing else: no broker, no renderer, no state.
The bearer token of each MCP request is handed to the gateway as its API key.
"""
