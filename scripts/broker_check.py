"""Make sure RabbitMQ answers at the AMQP URL; start the local one if it is installed but down.

``make run`` and ``make test`` call this first, so a stopped local broker is a
one-line message or a self-healing step rather than a hang later on.

It also heals one known broken state of a local RabbitMQ 3.10: when a quorum
queue with at-least-once dead-lettering is deleted just as the broker comes
back from a restart, its dead-letter worker crashes in a loop and takes the
``rabbit_fifo_dlx_sup`` supervisor down for good; from then on every new jobs
queue crashes on its first consumer (INTERNAL_ERROR) until the app restarts.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def dead_letter_supervisor_missing() -> bool:
    """True when the local broker runs but has lost its at-least-once dead-letter supervisor."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None or os.geteuid() != 0:
        return False
    try:
        answer = subprocess.run(
            [ctl, "eval", "whereis(rabbit_fifo_dlx_sup)."], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return answer.returncode == 0 and answer.stdout.strip() == "undefined"


def restart_app() -> None:
    print(
        "the local RabbitMQ lost its dead-letter supervisor (rabbit_fifo_dlx_sup, a RabbitMQ 3.10 bug); "
        "restarting its app (rabbitmqctl stop_app; rabbitmqctl start_app)"
    )
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    time.sleep(5)  # let recovered quorum queues elect their leaders before anyone deletes them


def main(url: str) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if reachable(host, port):
        if host in LOCAL_HOSTS and dead_letter_supervisor_missing():
            restart_app()
        return 0
    server = shutil.which("rabbitmq-server")
    if host in LOCAL_HOSTS and server and os.geteuid() == 0:
        print(f"RabbitMQ is not answering on {host}:{port}; starting the local one (rabbitmq-server -detached)")
        subprocess.run([server, "-detached"], check=False)
        for _ in range(60):
            time.sleep(1)
            if reachable(host, port):
                # The port opens a moment before the broker accepts logins.
                time.sleep(3)
                return 0
    print(
        f"RabbitMQ is not reachable at {host}:{port}. Start it (e.g. `rabbitmq-server -detached`, or "
        "`docker compose up -d rabbitmq`) or point PLOTFARM_AMQP_URL at one.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PLOTFARM_AMQP_URL", "amqp://127.0.0.1:5672/")))
