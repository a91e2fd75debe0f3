"""A renderer started before its broker readies Chromium and the pool meanwhile.

``docker compose up`` starts RabbitMQ and the renderers together; a renderer
used to begin its seconds of Chromium and Pyodide only once RabbitMQ took
connections. Now both start at once: while the broker cannot be reached, the
renderer's pool gets ready, ``/readyz`` says it waits for the broker and why,
and nothing is consumed; SIGTERM still ends it at once.
"""

import time

import pytest

from tests.support import free_port, new_stack, readyz

pytestmark = pytest.mark.integration


def test_the_pool_gets_ready_while_the_broker_cannot_be_reached(amqp_url, tmp_path):
    nothing_listens = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    stack = new_stack(nothing_listens, tmp_path)
    renderer = stack.start_renderer("before-the-broker")
    try:
        deadline = time.monotonic() + 120
        while True:
            status, answer = readyz(renderer.url)
            if answer.get("checks", {}).get("interpreters") == "ok":
                break
            assert renderer.proc.poll() is None, renderer.tail()
            assert time.monotonic() < deadline, (status, answer, renderer.tail())
            time.sleep(0.2)
        assert status == 503 and not answer["ready"], answer
        assert answer["checks"]["broker"] != "ok", answer  # says why it is not ready
        log = renderer.tail(400)
        assert "interpreter pool ready" in log and "renderer ready" not in log and "consuming jobs" not in log
        assert renderer.stop(timeout=20) == 0, renderer.tail()
    finally:
        stack.stop_all()  # nothing was declared: the broker was never reached
