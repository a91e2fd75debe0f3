"""A throw-away 3-node RabbitMQ cluster on this machine, beside the default broker.

Why this shape: Debian's ``rabbitmq-server`` runs any number of nodes on one
host when each has its own node name, AMQP port, distribution port, data,
log and config, and they share an Erlang cookie. The nodes run as the
current user from ``/usr/lib/rabbitmq/bin`` (Debian's ``/usr/sbin`` wrappers
would switch to the ``rabbitmq`` user and its cookie), with ``HOME`` in the
cluster's temp dir, which holds a cookie of their own: so they cannot reach
the default broker (``rabbit@<host>`` on 5672, another cookie) and nothing
here can touch it. Every plugin is off (an empty enabled-plugins file);
streams need no plugin over AMQP 0.9.1. Every CLI call has a timeout (a
``list_queues`` was once seen to hang).

``python -m tests.cluster.cluster`` starts one and keeps it until Ctrl-C.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port

RABBITMQ_BIN = Path(os.environ.get("PLOTFARM_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
CLI_TIMEOUT_S = 60


class ClusterError(Exception):
    """A node did not start, join or answer in time."""


@dataclass
class Node:
    name: str  # pfc1@localhost
    port: int
    dist_port: int
    home: Path
    proc: subprocess.Popen | None = None
    beam_pid: int | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"


@dataclass
class Cluster:
    size: int = 3
    prefix: str = "pfc"
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="plotfarm-cluster-")))
    nodes: list[Node] = field(default_factory=list)

    # -- environment -----------------------------------------------------------------

    def _common_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.base),  # the cookie lives here
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def _node_env(self, node: Node) -> dict:
        return {
            **self._common_env(),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.home / "log"),
            "RABBITMQ_CONFIG_FILE": str(node.home / "rabbitmq.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    # -- CLI ----------------------------------------------------------------------------

    def cli(self, node: Node, *args: str, tool: str = "rabbitmqctl", timeout: float = CLI_TIMEOUT_S) -> str:
        """Run a RabbitMQ CLI tool against ``node`` with a timeout; ClusterError with its output on failure."""
        command = [str(RABBITMQ_BIN / tool), "-n", node.name, *args]
        try:
            done = subprocess.run(
                command, env=self._common_env(), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{' '.join(command[1:])}: no answer within {timeout} s") from exc
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(command[1:])} exited {done.returncode}: {done.stderr or done.stdout}")
        return done.stdout

    def cli_json(self, node: Node, *args: str, tool: str = "rabbitmqctl", timeout: float = CLI_TIMEOUT_S):
        return json.loads(self.cli(node, *args, "--formatter", "json", "-q", tool=tool, timeout=timeout) or "null")

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> "Cluster":
        """Start every node and join nodes 2..n to node 1; ClusterError (after stopping them) if it fails."""
        try:
            cookie = self.base / ".erlang.cookie"
            cookie.write_text(secrets.token_hex(20).upper())
            cookie.chmod(0o400)
            (self.base / "enabled_plugins").write_text("[].\n")
            (self.base / "rabbitmq-env.conf").write_text("")
            for n in range(1, self.size + 1):
                home = self.base / f"node{n}"
                (home / "log").mkdir(parents=True)
                node = Node(f"{self.prefix}{n}@localhost", free_port(), free_port(), home)
                (home / "rabbitmq.conf").write_text(
                    f"listeners.tcp.1 = 127.0.0.1:{node.port}\nloopback_users.guest = true\n"
                    "log.console = false\nlog.file.level = info\n"
                )
                self.nodes.append(node)
            for node in self.nodes:
                self.start_node(node, wait=False)
            for node in self.nodes:
                self.wait_node(node)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                self.cli(node, "stop_app")
                self.cli(node, "join_cluster", first.name)
                self.cli(node, "start_app")
            self.wait_running(len(self.nodes))
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node: Node, *, wait: bool = True) -> None:
        """Start (or restart, keeping its data: it rejoins the cluster by itself) one node."""
        log = open(node.home / "log" / "stdout.log", "ab")  # the child keeps it
        node.proc = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._node_env(node),
            cwd=node.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the clean-up kills all of it
        )
        log.close()
        if wait:
            self.wait_node(node)

    def wait_node(self, node: Node, timeout: float = 120) -> None:
        """Wait until the node has booted (``await_startup`` fails at once until it is known to epmd)."""
        deadline = time.monotonic() + timeout
        while True:
            if node.proc.poll() is not None:
                raise ClusterError(f"{node.name} exited with {node.proc.returncode}:\n{self.log_tail(node)}")
            try:
                self.cli(node, "await_startup", "--timeout", "30", timeout=40)
                break
            except ClusterError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"{node.name} did not start: {exc}\n{self.log_tail(node)}") from exc
                time.sleep(1)
        node.beam_pid = int(self.cli(node, "eval", "list_to_integer(os:getpid()).", timeout=30).strip())

    def running_nodes(self, via: Node | None = None) -> list[str]:
        via = via or self.alive()[0]
        return sorted(self.cli_json(via, "cluster_status", timeout=30)["running_nodes"])

    def wait_running(self, count: int, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            running = self.running_nodes()
            if len(running) == count:
                return running
            if time.monotonic() > deadline:
                raise ClusterError(f"{count} nodes expected running, found {running}")
            time.sleep(1)

    def alive(self) -> list[Node]:
        return [node for node in self.nodes if node.proc is not None and node.proc.poll() is None]

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def queues(self, via: Node | None = None) -> dict[str, dict]:
        """Every queue's type, leader and members, as one node sees them."""
        via = via or self.alive()[0]
        rows = self.cli_json(via, "list_queues", "name", "type", "leader", "members", timeout=30) or []
        return {row["name"]: row for row in rows}

    def connection_count(self, node: Node) -> int:
        """Client connections open on the node now."""
        return len(self.cli_json(node, "list_connections", "pid", timeout=30) or [])

    def kill(self, node: Node) -> None:
        """``kill -9`` the node's Erlang VM (beam.smp), as a crash would."""
        os.kill(node.beam_pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(30)

    def log_tail(self, node: Node, lines: int = 30) -> str:
        logs = sorted((node.home / "log").glob("*.log"))
        return "\n".join(
            f"-- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]) for p in logs
        )

    def stop(self) -> None:
        """Stop every node (rabbitmqctl stop, then SIGKILL of its process group) and delete the temp dir."""
        for node in self.nodes:
            if node.proc is None:
                continue
            if node.proc.poll() is None:
                with contextlib.suppress(ClusterError):
                    self.cli(node, "stop", timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            if node.beam_pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(node.beam_pid, signal.SIGKILL)  # if it somehow left its group
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


def main() -> None:
    cluster = Cluster().start()
    try:
        print("running:", ", ".join(cluster.running_nodes()))
        print("PLOTFARM_AMQP_URLS=" + ",".join(cluster.urls))
        print("Ctrl-C stops the nodes and deletes", cluster.base)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
