"""``python -m services.mcp``: the MCP server at http://HOST:PORT/mcp (Streamable HTTP)."""

import asyncio
import contextlib
import logging
import signal

import structlog
import uvicorn

from services.mcp.app import MCP_PATH, create_app
from shared.logging import configure_logging
from shared.settings import get_settings

log = structlog.get_logger("services.mcp")

# Per-request lines at INFO that say nothing our own log lines do not.
QUIET_LOGGERS = ("httpx2", "uvicorn.access", "mcp.server.streamable_http", "mcp.server.streamable_http_manager")


class _DropColorMessage(logging.Filter):
    """uvicorn passes a second, ANSI-coloured copy of its message as an extra; the logs need one."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: it re-raises SIGTERM after a graceful shutdown, so the
    process would die of the signal; here SIGTERM/SIGINT stop it cleanly and it exits 0."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def main() -> None:
    settings = get_settings()
    configure_logging(settings, "mcp")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addFilter(_DropColorMessage())
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.mcp_host,
        port=settings.mcp_port,
        log_config=None,  # uvicorn's records go through the structlog handler configured above
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    log.info(
        "mcp server listening",
        url=f"http://{settings.mcp_host}:{settings.mcp_port}{MCP_PATH}",
        gateway=settings.mcp_gateway_url,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # stop accepting, let requests in flight finish (timeout_graceful_shutdown), run the lifespan's exit
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()
    log.info("mcp server stopped")


if __name__ == "__main__":
    asyncio.run(main())
