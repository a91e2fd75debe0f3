"""The container images and the compose stack, built and run for real (part of ``make test``).

The images are built with deploy/build-images.sh, as an operator builds them (layer caching:
after a code change only the last layers are made again), and docker-compose.yml is started
with two renderers: under docker when a Docker engine answers, else under podman with
podman-compose 1.6, deploy/compose.podman.yml and deploy/podman-stack.sh (``make`` installs
podman when we are root and it is missing). The stack is a compose project of its own,
``plotfarm-test``, whose ports the engine picks on loopback (compose.test.yml), with an API key.
Healthchecks are not used: podman runs none without systemd; the test polls /readyz itself.

Checked through the gateway's published port and inside the containers:

- gateway, viewer and MCP server answer /readyz, the gateway only with the API key;
- plain and plotly.express figures are drawn, and both renderers draw some (``renderer_id``);
- ``python3 client.py`` (the standard library alone, no virtualenv) gets an SVG;
- every Chromium renderer process (``--type=renderer``) in each renderer container runs as
  uid 10001 with no capabilities, ``NoNewPrivs: 1`` and ``Seccomp: 2``;
- in every service's container the first process has no capabilities at all (bounding set
  empty), every process runs as uid 10001 with no_new_privs and a seccomp filter, and the root
  filesystem is read-only with a writable /tmp.

Afterwards every container, network and volume of the project is removed; the images stay (the
build cache). Runs are serialised machine-wide by a lock, as they share the project name and
the image tags; one interrupted before its teardown is cleaned up by the next.
"""

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import ROOT

# Cold build (no layer cache) ~5-15 min on 2 busy cores; cached rebuild and the stack ~3 min.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2700)]

PROJECT = "plotfarm-test"
API_KEY = "container-test-key"
LOCK = Path("/tmp/plotfarm-container-test.lock")
BUILD_TIMEOUT_S = 1800
READY_TIMEOUT_S = 480  # two renderers warming up beside the whole stack, on a loaded machine
RENDERER_UID = "10001"
PLAIN = (ROOT / "examples" / "scatter.py").read_text()
PX = (ROOT / "examples" / "px_iris.py").read_text()


def _run(*command: str, timeout: float = 120, env: dict | None = None, check: bool = True) -> str:
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def _podman_compose() -> str | None:
    for candidate in (os.environ.get("PODMAN_COMPOSE"), str(ROOT / "build/podman-compose/bin/podman-compose")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("podman-compose")


@dataclass
class Stack:
    engine: str  # docker or podman
    compose_files: list[str]
    podman_compose: str | None = None
    env: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)  # service -> published host port
    logs: Path | None = None

    def compose(self, *args: str, timeout: float = 300) -> str:
        if self.engine == "docker":
            files = [arg for path in self.compose_files for arg in ("-f", path)]
            return _run("docker", "compose", "-p", PROJECT, *files, *args, timeout=timeout, env=self.env)
        return _run("deploy/podman-stack.sh", *args, timeout=timeout, env=self.env)

    def containers(self, service: str | None = None) -> list[str]:
        filters = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        return sorted(_run(self.engine, "ps", "-a", *filters, "--format", "{{.Names}}").split())

    def exec(self, container: str, script: str, check: bool = True) -> str:
        return _run(self.engine, "exec", container, "sh", "-c", script, check=check)

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    # -- lifecycle -------------------------------------------------------------------

    def up(self) -> None:
        if self.engine == "docker":
            self.compose("up", "-d", "--no-build", "--scale", "renderer=2")
        else:
            self.compose("up", "--no-build")  # podman-stack.sh: two renderers
        for service, port in (("gateway", 3000), ("viewer", 8000), ("mcp", 3001)):
            self.ports[service] = self._published(service, port)

    def _published(self, service: str, port: int) -> int:
        (container,) = self.containers(service)
        out = _run(self.engine, "port", container, f"{port}/tcp").split()[0]  # 127.0.0.1:43303
        return int(out.rsplit(":", 1)[1])

    def down(self) -> list[str]:
        """Take the project down as an operator would; what it left behind is removed here and named."""
        leftovers: list[str] = []
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.save_logs()
        try:
            if self.engine == "docker":
                self.compose("down", "--volumes", "--remove-orphans", "--timeout", "45", timeout=600)
            else:
                self.compose("down", "-v", timeout=600)
        except (AssertionError, subprocess.TimeoutExpired) as failed:
            leftovers.append(f"down failed: {failed}")
        leftovers += self.remove_everything()
        return leftovers

    def remove_everything(self) -> list[str]:
        """Force-remove every container, volume and network of the project; returns what there was."""
        label = f"label=com.docker.compose.project={PROJECT}"
        found = []
        containers = self.containers()
        if containers:
            found += containers
            depend = ["--depend"] if self.engine == "podman" else []
            _run(self.engine, "rm", "-f", *depend, *containers, check=False, timeout=300)
        volumes = _run(self.engine, "volume", "ls", "-q", "--filter", label, check=False).split()
        volumes += [
            name
            for name in _run(self.engine, "volume", "ls", "-q", check=False).split()
            if name.startswith(f"{PROJECT}_") and name not in volumes
        ]
        if volumes:
            found += volumes
            _run(self.engine, "volume", "rm", "-f", *volumes, check=False)
        networks = [
            name
            for name in _run(self.engine, "network", "ls", "--format", "{{.Name}}", check=False).split()
            if name.startswith(f"{PROJECT}_")
        ]
        if networks:
            found += networks
            _run(self.engine, "network", "rm", *networks, check=False)
        return found

    def save_logs(self) -> None:
        if self.logs is None:
            return
        for container in self.containers():
            done = subprocess.run(
                [self.engine, "logs", container], capture_output=True, text=True, timeout=60, errors="replace"
            )
            (self.logs / f"{container}.log").write_text(done.stdout + done.stderr)

    def log_tails(self, lines: int = 12) -> str:
        """The last lines of every container's log, each line cut short."""
        tails = []
        for container in self.containers():
            done = subprocess.run(
                [self.engine, "logs", "--tail", str(lines), container], capture_output=True, text=True, errors="replace"
            )
            text = "\n".join(line[:240] for line in (done.stdout + done.stderr).splitlines())
            tails.append(f"--- {container}\n{text}")
        return "\n".join(tails) + (f"\n(whole logs: {self.logs})" if self.logs else "")


def _request(url: str, body: dict | None = None, key: str | None = API_KEY, timeout: float = 10) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, {"text": raw.decode(errors="replace")[:500]}


def _wait_ready(stack: Stack) -> dict:
    """Seconds from `up` until each part answered /readyz; fails with the laggards' logs."""
    start, took = time.monotonic(), {}
    renderers = stack.containers("renderer")
    assert len(renderers) == 2, f"expected two renderer containers, found {renderers}"
    waiting = {"gateway", "viewer", "mcp", *renderers}
    while waiting and time.monotonic() - start < READY_TIMEOUT_S:
        for part in sorted(waiting):
            if part in ("gateway", "viewer", "mcp"):
                with contextlib.suppress(OSError):
                    ready = _request(stack.url(part, "/readyz"), key=None, timeout=5)[0] == 200
            else:
                ready = bool(stack.exec(part, "curl -fsS http://localhost:8001/readyz", check=False))
            if ready:
                waiting.discard(part)
                took[part] = round(time.monotonic() - start, 1)
        time.sleep(2)
    if waiting:
        pytest.fail(f"not ready after {READY_TIMEOUT_S} s: {sorted(waiting)}\n{stack.log_tails()}")
    return took


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if _docker_answers():
        engine, files, podman_compose = "docker", ["docker-compose.yml", "tests/containers/compose.test.yml"], None
    elif shutil.which("podman"):
        engine = "podman"
        files = ["docker-compose.yml", "deploy/compose.podman.yml", "tests/containers/compose.test.yml"]
        podman_compose = _podman_compose()
        if podman_compose is None:
            pytest.skip("podman-compose 1.6 is missing: make podman installs it (build/podman-compose)")
    else:
        pytest.skip("no container engine: no Docker engine answers and podman is missing (sudo make podman)")
    logs = tmp_path_factory.mktemp("container-logs")
    stack = Stack(
        engine,
        files,
        podman_compose,
        env={
            "PLOTFARM_API_KEYS": f"test={API_KEY}",
            "COMPOSE_PROJECT_NAME": PROJECT,
            "COMPOSE_FILE": ":".join(files),
            **({"PODMAN_COMPOSE": podman_compose} if podman_compose else {}),
            "ENGINE": engine,
        },
        logs=logs,
    )
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run's stack or build: wait for it
        stale = stack.remove_everything()
        if stale:
            print(f"removed what an interrupted run left: {stale}")

        started = time.monotonic()
        build_log = logs / "build-images.log"
        with open(build_log, "w") as out:
            built = subprocess.run(
                ["deploy/build-images.sh"],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT_S,
                env={**os.environ, **stack.env},
            )
        if built.returncode != 0:
            pytest.fail(f"deploy/build-images.sh failed ({built.returncode}):\n{build_log.read_text()[-6000:]}")
        print(f"\n{engine}: images built in {time.monotonic() - started:.0f} s")
        try:
            started = time.monotonic()
            stack.up()
            print(f"up in {time.monotonic() - started:.0f} s; ready after {_wait_ready(stack)} s; logs in {logs}")
            yield stack
        finally:
            started = time.monotonic()
            leftovers = stack.down()
            print(f"down in {time.monotonic() - started:.0f} s")
            assert not leftovers, f"the teardown left these behind (removed now): {leftovers}"


def _renderer_ids(stack: Stack) -> dict[str, str]:
    """Each renderer container's hostname, which begins every renderer_id it reports."""
    return {stack.exec(name, "hostname").strip(): name for name in stack.containers("renderer")}


def test_the_gateway_requires_the_api_key(stack):
    status, _ = _request(stack.url("gateway", "/api/jobs"), {"code": PLAIN}, key=None)
    assert status == 401
    status, _ = _request(stack.url("gateway", "/api/jobs"), {"code": PLAIN}, key="not-the-key")
    assert status == 401


def test_both_renderers_draw_plain_and_px_figures(stack):
    hostnames = _renderer_ids(stack)
    results, lock = [], threading.Lock()

    def execute(code: str, kind: str) -> None:
        status, body = _request(stack.url("gateway", "/execute"), {"code": code}, timeout=180)
        with lock:
            results.append((kind, status, body))

    seen: set[str] = set()
    for _round in range(4):  # six jobs at once spread over both renderers (prefetch 2 each) in practice
        threads = [
            threading.Thread(target=execute, args=(code, kind)) for code, kind in [(PLAIN, "plain"), (PX, "px")] * 3
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for kind, status, body in results:
            assert status == 200 and body.get("status") == "done", f"{kind} job: {status} {str(body)[:1500]}"
            assert body["svg"].lstrip().startswith(("<svg", "<?xml")) and "</svg>" in body["svg"], kind
            seen.add(body["renderer_id"].rsplit("-", 1)[0])
        if {kind for kind, *_ in results} == {"plain", "px"} and seen >= set(hostnames):
            break
    assert seen == set(hostnames), f"jobs done by {seen}, renderer containers {hostnames}"
    print(f"{len(results)} jobs, renderers used: {sorted(seen)}")


def test_the_documented_client_needs_only_python3(stack, tmp_path):
    """deploy/README.md's `python3 client.py --gateway ... --file examples/scatter.py`: the standard library
    only (-E -s -S: no environment, no site-packages), with the checkout's own shared/ beside the script."""
    python3 = shutil.which("python3") or "/usr/bin/python3"
    done = subprocess.run(
        [python3, "-E", "-s", "-S", "client.py", "--gateway", stack.url("gateway", ""), "--file", "examples/scatter.py"]
        + ["--out", str(tmp_path), "--api-key", API_KEY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (svg,) = tmp_path.glob("*.svg")
    assert "</svg>" in svg.read_text()


STATUS_FIELDS = ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp", "Seccomp_filters")
# Every Chromium renderer process (its first word Chromium's binary, one word --type=renderer;
# Chromium rewrites its children's command lines into one string): where job code runs.
# Not this script, whose text names them too.
CHROMIUM_RENDERERS = r"""
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  set -- $cmd
  case "${1:-}" in */chromium) ;; *) continue ;; esac
  case " $cmd " in *" --type=renderer "*) ;; *) continue ;; esac
  echo "pid ${p#/proc/}"; grep -E '^(FIELDS):' "$p/status"
done
""".replace("FIELDS", "|".join(STATUS_FIELDS))


def _processes(listing: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in listing.splitlines():
        if line.startswith("pid "):
            current = found.setdefault(line.split()[1], {})
        elif ":" in line:
            name, value = line.split(":", 1)
            current[name] = value.split()[0] if name in ("Uid", "Gid") else value.strip()
    return found


def test_chromium_renderer_processes_are_sandboxed(stack):
    for container in stack.containers("renderer"):
        processes = _processes(stack.exec(container, CHROMIUM_RENDERERS))
        assert processes, f"no Chromium renderer process in {container}"
        for pid, status in processes.items():
            where = f"{container} pid {pid}: {status}"
            assert status["Uid"] == RENDERER_UID, where
            assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1", where
            assert int(status["CapEff"], 16) == 0, where
            # Chromium's own seccomp-bpf filter on top of the container's.
            assert int(status.get("Seccomp_filters", "2")) >= 2, where
        print(
            f"{container}: {len(processes)} Chromium renderer processes, uid 10001, Seccomp 2, NoNewPrivs 1, CapEff 0"
        )


# Every process in the container: pid, then its status fields.
ALL_PROCESSES = r"""
for p in /proc/[0-9]*; do
  echo "pid ${p#/proc/}"; grep -E '^(FIELDS):' "$p/status" 2>/dev/null
done
""".replace("FIELDS", "|".join(STATUS_FIELDS))


def test_every_service_runs_unprivileged_on_a_read_only_root(stack):
    services = ["gateway", "viewer", "mcp", "renderer"]
    if stack.engine == "podman":
        services.append("rabbitmq")  # Debian's broker, hardened in deploy/compose.podman.yml
    for service in services:
        for container in stack.containers(service):
            processes = {
                pid: status for pid, status in _processes(stack.exec(container, ALL_PROCESSES)).items() if status
            }
            # The container's first process: every capability dropped, bounding set included
            # (inside the user namespaces Chromium and the launcher make, each has its own).
            init = processes["1"]
            for capabilities in ("CapEff", "CapPrm", "CapBnd"):
                assert int(init[capabilities], 16) == 0, f"{container} pid 1: {init}"
            for pid, status in processes.items():
                where = f"{container} pid {pid}: {status}"
                if service != "rabbitmq":
                    assert status["Uid"] == RENDERER_UID, where
                assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", where
            refused = stack.exec(container, "touch /usr/x /etc/x 2>&1; echo $?", check=False)
            assert "Read-only file system" in refused, f"{container}: the root filesystem is writable: {refused}"
            assert stack.exec(container, "touch /tmp/x && rm /tmp/x && echo ok").strip() == "ok", container
