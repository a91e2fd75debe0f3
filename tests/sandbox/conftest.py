"""A real renderer to attack, and a canary that must never hear from it.

One gateway and one renderer (so "the same renderer" is never in doubt) in
their own namespace, with the default isolation (``job``). The canary is a
TCP server on loopback that counts every connection: attacks aim at it, and
any connection at all is an escape.
"""

import socket
import threading
import time

import aiohttp
import pytest

from shared import procfs
from tests.support import Api, Stack, new_stack

OUTCOMES: list[dict] = []


class Canary:
    def __init__(self):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.hits: list[tuple[float, bytes]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                try:
                    first = conn.recv(200)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nAccess-Control-Allow-Origin: *\r\n\r\nok")
                except OSError:
                    first = b""
                self.hits.append((time.time(), first))

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="session")
def canary():
    canary = Canary()
    yield canary
    canary.close()


@pytest.fixture(scope="session")
def sandbox_stack(amqp_url, tmp_path_factory):
    stack = new_stack(amqp_url, tmp_path_factory.mktemp("sandbox-logs"), PLOTFARM_RENDERER_CONCURRENCY=2)
    try:
        gateway = stack.start_gateway()
        renderer = stack.start_renderer("sandboxed-renderer")
        stack.wait_ready(gateway)
        stack.wait_ready(renderer)
        stack.gateway_url = gateway.url
        yield stack
    finally:
        stack.close()


@pytest.fixture
async def sandbox_api(sandbox_stack):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        yield Api(session, sandbox_stack.gateway_url)


def renderer_memory_mb(stack: Stack) -> int:
    """Resident memory of the renderer and everything it started (Chromium included)."""
    root = stack.processes["sandboxed-renderer"].proc.pid
    total_kb = 0
    for pid in [root, *procfs.descendants(root)]:
        try:
            total_kb += procfs.rss_kb(pid)
        except OSError:
            pass
    return total_kb // 1024


def pytest_terminal_summary(terminalreporter):
    if not OUTCOMES:
        return
    terminalreporter.section("sandbox attacks")
    terminalreporter.write_line(
        f"{'attack':<30} {'status':<7} {'error type':<24} {'attack s':>8} {'next job s':>10}  canary"
    )
    for row in OUTCOMES:
        terminalreporter.write_line(
            f"{row['name']:<30} {row['status']:<7} {row['error_type']:<24} {row['seconds']:>8.1f} {row['next_seconds']:>10.1f}  {row['canary_hits']}"
        )
