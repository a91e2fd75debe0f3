"""`make run`'s supervisor: restarts a service that dies, and stops everything on Ctrl-C."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from shared import procfs
from tests.support import ROOT, delete_namespace, free_port, new_namespace, wait_http_ok

pytestmark = pytest.mark.integration


def child_pids(parent: int) -> dict[int, str]:
    found = {}
    for pid in procfs.children(parent):
        try:
            found[pid] = " ".join(procfs.command_line(pid))
        except OSError:
            continue
    return found


def test_supervisor_restarts_a_dead_service_and_stops_cleanly(amqp_url, tmp_path):
    gateway_port, viewer_port, mcp_port, namespace = free_port(), free_port(), free_port(), new_namespace()
    env = {
        **os.environ,
        "PLOTFARM_AMQP_URL": amqp_url,
        "PLOTFARM_NAMESPACE": namespace,
        "PLOTFARM_GATEWAY_PORT": str(gateway_port),
        "PLOTFARM_VIEWER_PORT": str(viewer_port),
        "PLOTFARM_MCP_PORT": str(mcp_port),
        "RENDERERS": "0",
    }
    log = open(tmp_path / "supervisor.log", "wb")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "services.supervisor"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{gateway_port}/healthz", 60)
        wait_http_ok(f"http://127.0.0.1:{viewer_port}/healthz", 60)
        wait_http_ok(f"http://127.0.0.1:{mcp_port}/healthz", 60)  # make run starts the MCP server too
        gateway = next(pid for pid, cmd in child_pids(supervisor.pid).items() if "services.gateway" in cmd)
        os.kill(gateway, signal.SIGKILL)
        time.sleep(0.5)
        wait_http_ok(f"http://127.0.0.1:{gateway_port}/healthz", 60)
        restarted = next(pid for pid, cmd in child_pids(supervisor.pid).items() if "services.gateway" in cmd)
        assert restarted != gateway
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(60) == 0
        assert child_pids(supervisor.pid) == {}
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{gateway_port}/healthz", timeout=2)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        log.close()
        asyncio.run(delete_namespace(amqp_url, namespace))
    output = (tmp_path / "supervisor.log").read_text()
    assert "exited with -9; restart 1" in output and "plotfarm: stopped" in output
