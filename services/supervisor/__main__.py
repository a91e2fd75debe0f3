"""``python -m services.supervisor``: the whole system in one terminal (``make run``).

Starts the gateway, the viewer, the MCP server and ``PLOTFARM_RENDERERS`` (or
``RENDERERS``) renderers (default 1) as child processes, prints their logs interleaved with a
coloured name in front, and restarts any that dies (as compose's ``restart:
unless-stopped`` would), forever, backing off when one keeps dying, except a
child that exits with EX_CONFIG (78: its configuration cannot work, e.g. the
broker refused the topology), which is reported and left stopped. Ctrl-C or
SIGTERM stops them all gracefully: each child gets SIGTERM and its own grace
period, then SIGKILL.
"""

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from shared.retry import Backoff
from shared.settings import get_settings

COLOURS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[91m"]
RESET = "\033[0m"
STOP_GRACE_S = 40.0
HEALTHY_AFTER_S = 60.0  # a child that ran this long before dying starts its backoff afresh
RESTART_BACKOFF = Backoff(first_s=1.0, max_s=30.0, jitter=0.0)
EX_CONFIG = 78


@dataclass
class Child:
    name: str
    module: str
    env: dict = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0


def children(renderers: int) -> list[Child]:
    host = socket.gethostname()
    settings = get_settings()
    procs = [
        Child("gateway", "services.gateway"),
        Child("viewer", "services.viewer"),
        Child("mcp", "services.mcp", {"PLOTFARM_MCP_GATEWAY_URL": f"http://127.0.0.1:{settings.gateway_port}"}),
    ]
    for i in range(1, renderers + 1):
        procs.append(
            Child(
                f"renderer-{i}",
                "services.renderer",
                {
                    "PLOTFARM_RENDERER_ID": f"{host}-renderer-{i}",
                    "PLOTFARM_RENDERER_HEALTH_PORT": str(settings.renderer_health_port + i - 1)
                    if settings.renderer_health_port
                    else "0",
                },
            )
        )
    return procs


class Supervisor:
    def __init__(self, procs: list[Child]):
        self.procs = procs
        self.stopping = False
        width = max(len(p.name) for p in procs)
        colour = sys.stdout.isatty()
        self.prefix = {
            p.name: (f"{COLOURS[i % len(COLOURS)]}{p.name:<{width}}{RESET} | " if colour else f"{p.name:<{width}} | ")
            for i, p in enumerate(procs)
        }

    def say(self, name: str, line: str) -> None:
        sys.stdout.write(self.prefix.get(name, "") + line + "\n")
        sys.stdout.flush()

    async def keep_running(self, child: Child) -> None:
        failures = 0  # deaths in a row, each soon after its start
        while not self.stopping:
            env = {**os.environ, "PLOTFARM_LOG_FORMAT": os.environ.get("PLOTFARM_LOG_FORMAT", "console"), **child.env}
            started = time.monotonic()
            child.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-u",
                "-m",
                child.module,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only us; we pass SIGTERM on
            )
            async for raw in child.process.stdout:
                self.say(child.name, raw.decode(errors="replace").rstrip("\n"))
            code = await child.process.wait()
            if self.stopping:
                return
            if code == EX_CONFIG:
                self.say(child.name, f"*** exited with {code} (configuration error, see above); not restarting it")
                return
            failures = 1 if time.monotonic() - started > HEALTHY_AFTER_S else failures + 1
            delay = RESTART_BACKOFF.delay(failures)
            child.restarts += 1
            self.say(child.name, f"*** exited with {code}; restart {child.restarts} in {delay:.0f} s")
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        self.stopping = True
        running = [c for c in self.procs if c.process and c.process.returncode is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(c.process.wait() for c in running)), STOP_GRACE_S)
        except TimeoutError:
            for child in running:
                if child.process.returncode is None:
                    self.say(child.name, "*** did not stop in time; killing it")
                    child.process.kill()


async def main() -> int:
    settings = get_settings()
    renderers = settings.renderers
    supervisor = Supervisor(children(renderers))
    print(
        f"plotfarm: gateway {settings.public_gateway_url}  viewer {settings.public_viewer_url}  "
        f"client-side page {settings.public_gateway_url}/client-plot  MCP http://localhost:{settings.mcp_port}/mcp  "
        f"broker {settings.amqp_url.split('@')[-1]}  "
        f"renderers {renderers}   (Ctrl-C stops everything)",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(supervisor.keep_running(child)) for child in supervisor.procs]
    await stop.wait()
    print("plotfarm: stopping…", flush=True)
    await supervisor.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("plotfarm: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
