"""A dead letter never beats the real result of a job that is still running somewhere.

RabbitMQ 3.10's quorum queues count a closed channel as a delivery, so a job
can reach the delivery limit and be dead-lettered while its renderer runs it
unharmed (a broker restart, a lost connection). Another renderer then takes
the dead letter. It used to answer it at once with ``RendererCrashed``, and
the first final result wins: the real result, published a moment later by the
renderer that ran the job, was ignored. Found in CI (issue 15's closing note).

Here with a delivery limit of 1, so that one lost connection is enough: the
renderer running a slow job loses its connection (closed by RabbitMQ itself,
``rabbitmqctl close_connection``), the job is dead-lettered, the other renderer
takes the dead letter, and the job must still end ``done``.
"""

import asyncio
import time

import aiohttp
import pytest

from tests.support import Api, new_stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RENDERERS = ("dl-renderer-a", "dl-renderer-b")
SLOW = "import time\ntime.sleep(8)\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).show()\n"


@pytest.fixture(scope="module")
def one_try_stack(amqp_url, tmp_path_factory):
    stack = new_stack(
        amqp_url,
        tmp_path_factory.mktemp("dead-letter-logs"),
        PLOTFARM_DELIVERY_LIMIT=1,
        PLOTFARM_RENDERER_CONCURRENCY=1,
        PLOTFARM_ISOLATION="none",
    )
    try:
        gateway = stack.start_gateway()
        stack.gateway_url = gateway.url
        for name in RENDERERS:
            stack.start_renderer(name)
        for process in stack.processes.values():
            stack.wait_ready(process)
        yield stack
    finally:
        stack.close()


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {err.decode()[-500:]}"
    return out.decode()


async def close_connections_of(renderer_id: str) -> int:
    """Close, from the broker's side, every connection the renderer named itself on (shared/broker.py)."""
    listing = await rabbitmqctl("list_connections", "pid", "client_properties", "-q", "--no-table-headers")
    pids = [line.split("\t")[0] for line in listing.splitlines() if f'"plotfarm renderer {renderer_id}"' in line]
    for pid in pids:
        await rabbitmqctl("close_connection", pid, "plotfarm fault test: this renderer's connection is lost")
    return len(pids)


@pytest.mark.timeout(600)
async def test_a_real_result_published_after_the_job_was_dead_lettered_is_the_answer(one_try_stack):
    stack = one_try_stack
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        api = Api(session, stack.gateway_url)
        job_id = (await api.submit(SLOW, timeout_s=30))["job_id"]
        running: dict = {}

        async def is_running() -> bool:
            running.update(await api.status(job_id))
            return running["status"] == "running"

        deadline = time.monotonic() + 60
        while not await is_running():
            assert time.monotonic() < deadline, running
            await asyncio.sleep(0.2)
        runner = running["renderer_id"]
        other = next(name for name in RENDERERS if name != runner)
        assert await close_connections_of(runner) >= 1
        result = await api.result(job_id, timeout=120)
    other_log = stack.processes[other].log_path
    # The scenario happened: the other renderer took the dead letter while the job ran elsewhere.
    assert await wait_until(lambda: "job dead-lettered; answering it once" in other_log.read_text(), 30), stack.logs(
        30, problems_only=True
    )
    assert result["status"] == "done", result.get("error")
    assert result["renderer_id"] == runner
