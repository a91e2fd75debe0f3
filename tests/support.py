"""Running plotfarm's real services as subprocesses, isolated per test run.

Each run gets its own namespace (every exchange and queue name starts with
it) on the shared broker and its own free ports, and deletes its queues and
exchanges when it is done, so runs never see each other's jobs.
"""

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aiohttp

from shared import topology
from shared.broker import Broker
from shared.messages import JobQueued, utcnow

ROOT = Path(__file__).resolve().parent.parent
# How warnings and errors look in the services' JSON logs and in tracebacks.
PROBLEM_LEVELS = ('"level": "warning"', '"level": "error"', '"level": "critical"', "Traceback", "Error:")


_PORTS_GIVEN: set[int] = set()
LOWEST_PORT = 10000


def free_port() -> int:
    """A TCP port nothing listens on now, for a service a test is about to start.

    Chosen below the kernel's ephemeral range: a port bind(0) returns lies in
    that range, where another process's outgoing connection (a service's to
    RabbitMQ) may take it before the service binds it. That happened in CI
    (a renderer's health server: EADDRINUSE). No port is given twice in a run.
    """
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        ephemeral_from = int(ports.read().split()[0])
    if ephemeral_from - LOWEST_PORT < 1000:  # an unusual range: take the kernel's choice
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", 0))
            return sock.getsockname()[1]
    while True:
        port = random.randrange(LOWEST_PORT, ephemeral_from)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # what the services bind (health servers: all interfaces)
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port


def new_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


async def delete_namespace(amqp_url: str, namespace: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await topology.delete(await connection.channel(), namespace)


def readyz(url: str) -> tuple[int, dict]:
    """A service's ``/readyz``: its status and body; ``(0, {})`` while nothing listens there yet."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def wait_http_ok(url: str, timeout: float, process: "ServiceProcess | None" = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.proc.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.proc.returncode}:\n{process.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001
            last = exc
        time.sleep(0.25)
    tail = process.tail() if process else ""
    raise TimeoutError(f"{url} not ready after {timeout} s ({last}):\n{tail}")


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self) -> "ServiceProcess":
        self.log_file = open(self.log_path, "ab")  # closed in stop
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 40) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the Chromium it started, if any is left
        self.log_file.close()
        return self.proc.returncode

    def tail(self, lines: int = 60, *, problems_only: bool = False) -> str:
        """The last ``lines`` lines of the log; with ``problems_only``, of its warnings and errors."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        if problems_only:
            text = [line for line in text if any(level in line for level in PROBLEM_LEVELS)]
        return "\n".join(text[-lines:])


@dataclass
class Stack:
    """A running gateway, viewer and renderers in one namespace."""

    amqp_url: str
    namespace: str
    log_dir: Path
    env: dict
    gateway_url: str = ""
    viewer_url: str = ""
    processes: dict = field(default_factory=dict)

    def service_env(self, **extra) -> dict:
        return {**self.env, **{k: str(v) for k, v in extra.items()}}

    def start_gateway(self, name: str = "gateway", **extra) -> ServiceProcess:
        port = free_port()
        env = self.service_env(
            PLOTFARM_GATEWAY_PORT=port, PLOTFARM_PUBLIC_GATEWAY_URL=f"http://127.0.0.1:{port}", **extra
        )
        process = ServiceProcess(name, "services.gateway", env, self.log_dir / f"{name}.log").start()
        process.url = f"http://127.0.0.1:{port}"
        self.processes[name] = process
        return process

    def start_viewer(self, name: str = "viewer", **extra) -> ServiceProcess:
        port = free_port()
        env = self.service_env(PLOTFARM_VIEWER_PORT=port, **extra)
        process = ServiceProcess(name, "services.viewer", env, self.log_dir / f"{name}.log").start()
        process.url = f"http://127.0.0.1:{port}"
        self.processes[name] = process
        return process

    def start_renderer(self, name: str, **extra) -> ServiceProcess:
        port = free_port()
        env = self.service_env(PLOTFARM_RENDERER_ID=name, PLOTFARM_RENDERER_HEALTH_PORT=port, **extra)
        process = ServiceProcess(name, "services.renderer", env, self.log_dir / f"{name}.log").start()
        process.url = f"http://127.0.0.1:{port}"
        self.processes[name] = process
        return process

    def wait_ready(self, process: ServiceProcess, timeout: float = 180) -> None:
        wait_http_ok(f"{process.url}/readyz", timeout, process)

    def stop_all(self) -> None:
        for process in list(self.processes.values()):
            process.stop()

    def logs(self, lines: int = 40, *, problems_only: bool = False) -> str:
        return "\n\n".join(
            f"==== {name} ====\n{p.tail(lines, problems_only=problems_only)}" for name, p in self.processes.items()
        )

    def close(self) -> None:
        """Stop every process and delete the namespace's queues and exchanges."""
        self.stop_all()
        asyncio.run(delete_namespace(self.amqp_url, self.namespace))


def new_stack(amqp_url: str, log_dir: Path, **env) -> Stack:
    """A stack in a namespace of its own, with the settings every test stack shares."""
    namespace = new_namespace()
    base = {
        "PLOTFARM_AMQP_URL": amqp_url,
        "PLOTFARM_NAMESPACE": namespace,
        "PLOTFARM_LOG_FORMAT": "json",
        "PLOTFARM_RATE_LIMIT_PER_MINUTE": "0",  # tests submit bursts; rate limits have their own tests
    }
    return Stack(amqp_url, namespace, log_dir, {**base, **{k: str(v) for k, v in env.items()}})


class Api:
    """A small async client for the gateway, as a user would call it."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session = session
        self.base = base

    async def submit(self, code: str, **fields) -> dict:
        async with self.session.post(f"{self.base}/api/jobs", json={"code": code, **fields}) as response:
            assert response.status == 202, f"{response.status}: {await response.text()}"
            return await response.json()

    async def status(self, job_id: str, wait: float = 0, include_svg: bool = False) -> dict:
        params = {"wait": str(wait)}
        if include_svg:
            params["include"] = "svg"
        async with self.session.get(f"{self.base}/api/jobs/{job_id}", params=params) as response:
            assert response.status == 200, f"{response.status}: {await response.text()}"
            return await response.json()

    async def result(self, job_id: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            status = await self.status(job_id, wait=max(0.0, min(20.0, remaining)), include_svg=True)
            if status["status"] in ("done", "failed"):
                return status
            if remaining <= 0:
                raise AssertionError(f"job {job_id} still {status['status']} after {timeout} s")

    async def render(self, code: str, timeout: float = 90, **fields) -> dict:
        accepted = await self.submit(code, **fields)
        return await self.result(accepted["job_id"], timeout)


class EventPublisher:
    """Publishes numbered `queued` events with confirms, every ``interval_s``, until stopped."""

    def __init__(self, broker: Broker, interval_s: float = 0.01):
        self.broker, self.interval_s = broker, interval_s
        self.published: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> "EventPublisher":
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self._stop.is_set():
            job_id = f"event-{len(self.published)}"
            try:
                await self.broker.publish_event(JobQueued(job_id=job_id, code="x", submitted_at=utcnow()))
            except Exception:  # noqa: BLE001  (broker away: try again, like a renderer would)
                await asyncio.sleep(0.2)
                continue
            self.published.append(job_id)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """Stop publishing (again is fine) and wait for the publishing task to end."""
        self._stop.set()
        if self._task is not None:
            await self._task


async def wait_until(condition, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True
