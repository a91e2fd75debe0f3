"""Where the tests find RabbitMQ.

``PLOTFARM_AMQP_URL`` when set (``make test`` sets it to the local broker
unless you set it yourself); otherwise a throw-away RabbitMQ container via
testcontainers when a Docker engine answers; otherwise the tests that need a
broker fail with a message saying how to provide one.
"""

import os
import socket
from urllib.parse import urlsplit

import pytest
import structlog

RABBITMQ_IMAGE = "rabbitmq:3.13"

# structlog's default set-up, with plain tracebacks: its default renders every
# logged exception with rich (installed for schemathesis), ~50 ms of CPU each,
# and a test that makes a service log hundreds of them (a failing event
# handler) spent its time formatting instead of testing. Services configure
# their own logging (shared/logging.py).
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=3):
            return True
    except OSError:
        return False


def _docker_available() -> bool:
    try:
        import docker  # only needed on this path

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="session")
def amqp_url():
    url = os.environ.get("PLOTFARM_AMQP_URL")
    if url:
        if not _reachable(url):
            pytest.fail(f"PLOTFARM_AMQP_URL={url} is not reachable; start RabbitMQ (rabbitmq-server -detached)")
        yield url
        return
    if _docker_available():
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        container = DockerContainer(RABBITMQ_IMAGE).with_exposed_ports(5672)
        with container:
            wait_for_logs(container, "Server startup complete", timeout=120)
            host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/"
        return
    pytest.fail(
        "no RabbitMQ for the tests: set PLOTFARM_AMQP_URL (`make test` uses amqp://guest:guest@127.0.0.1:5672/) "
        "or make a Docker engine available so testcontainers can start one"
    )
