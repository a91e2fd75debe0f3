"""A broker that refuses plotfarm's topology is reported, not retried in silence.

RabbitMQ refuses to re-declare a queue with other arguments. That is not a
blip a reconnect fixes: every service must say so, name the queue and the
argument, stay not ready (gateway, viewer) or exit with a clear message
(renderer), never report itself healthy or loop on tracebacks.
"""

import asyncio
import json
import time
import urllib.error
import urllib.request

import aio_pika
import pytest

from services.renderer.service import EX_CONFIG
from shared import topology
from shared.settings import Settings
from tests.support import delete_namespace, new_stack, readyz, wait_http_ok

pytestmark = pytest.mark.integration


async def predeclare_jobs_queue_with_another_delivery_limit(amqp_url: str, namespace: str) -> None:
    settings = Settings(_env_file=None, namespace=namespace)
    arguments = {**topology.jobs_queue_arguments(settings), "x-delivery-limit": 9}
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(topology.Names(namespace).jobs_queue, durable=True, arguments=arguments)


def test_every_service_names_the_refused_queue_and_argument(amqp_url, tmp_path):
    stack = new_stack(amqp_url, tmp_path)
    asyncio.run(predeclare_jobs_queue_with_another_delivery_limit(amqp_url, stack.namespace))
    queue = f"{stack.namespace}.jobs"
    try:
        gateway, viewer = stack.start_gateway(), stack.start_viewer()
        renderer = stack.start_renderer("refused-renderer")
        for process in (gateway, viewer):
            wait_http_ok(f"{process.url}/healthz", 60, process)

        # The renderer exits by itself, with EX_CONFIG and one clear error, no traceback loop.
        renderer.proc.wait(90)
        assert renderer.proc.returncode == EX_CONFIG, renderer.tail()
        renderer_log = renderer.tail(200)
        assert "renderer cannot start" in renderer_log and "x-delivery-limit" in renderer_log and queue in renderer_log
        assert "Traceback" not in renderer_log

        # Gateway and viewer stay up, not ready, and say why.
        deadline = time.monotonic() + 30
        while True:
            gateway_status, gateway_ready = readyz(gateway.url)
            viewer_status, viewer_ready = readyz(viewer.url)
            if (
                "x-delivery-limit" in gateway_ready["checks"]["broker"]
                and "x-delivery-limit" in viewer_ready["checks"]["events"]
            ):
                break
            assert time.monotonic() < deadline, (gateway_ready, viewer_ready)
            time.sleep(0.5)
        assert gateway_status == 503 and viewer_status == 503
        assert queue in gateway_ready["checks"]["broker"]

        # A job is refused with the reason, not accepted into a queue nobody can read.
        request = urllib.request.Request(
            f"{gateway.url}/api/jobs", data=b'{"code": "x = 1"}', headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 503 and "x-delivery-limit" in json.loads(refused.value.read())["error"]

        for process in (gateway, viewer):
            errors = [line for line in process.tail(400).splitlines() if '"level": "error"' in line]
            assert any("refused plotfarm's topology" in line and "x-delivery-limit" in line for line in errors), errors
            assert not any("events stream lost" in line for line in process.tail(400).splitlines())
    finally:
        stack.stop_all()
        asyncio.run(delete_namespace(amqp_url, stack.namespace))
