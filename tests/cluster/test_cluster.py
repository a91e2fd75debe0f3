"""plotfarm on a real 3-node RabbitMQ cluster: ``kill -9`` of the jobs queue's leader mid-burst.

Three Debian ``rabbitmq-server`` nodes are started beside the default broker
(tests/cluster/cluster.py) and joined; gateway, viewer and two renderers are
given every node's URL (``PLOTFARM_AMQP_URLS``). They all connect to the
first node, which also declares, and so leads, the queues: killing it takes
away the jobs queue's leader, the stream's writer and every service's
connection at once, the hardest single-node failure there is. The promise
checked is the README's: every accepted job reaches one final result, shown
once by gateway and viewer, with no process restarted.

``duplicates`` is the fault tests' measure (a job the viewer reported final
more than once). Result *events* in the stream can still come twice for a
job (a renderer whose result was confirmed but whose ack died with the node
renders the redelivered job again: at-least-once); the run prints how many,
and the first result wins in gateway and viewer.
"""

import asyncio
import contextlib
import re
import time
from collections import Counter
from datetime import datetime

import aio_pika
import aiohttp
import pytest

from shared import topology
from shared.messages import parse_event
from tests.cluster.cluster import Cluster
from tests.faults.load import SUMMARIES, Run, scaled
from tests.support import new_stack, wait_until

pytestmark = pytest.mark.cluster

RENDERERS = ("renderer-a", "renderer-b")
JOBS = 300


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster_stack(cluster, tmp_path_factory):
    stack = new_stack(
        cluster.urls[0],
        tmp_path_factory.mktemp("cluster-logs"),
        PLOTFARM_AMQP_URLS=",".join(cluster.urls),
        PLOTFARM_ISOLATION="none",  # as the fault tests: delivery does not depend on isolation
        PLOTFARM_RENDERER_CONCURRENCY=2,
        PLOTFARM_JS_HEAP_MB=256,
        PLOTFARM_VIEWER_HISTORY=scaled(JOBS) + 100,  # a new page's hello holds every job of the run
    )
    try:
        gateway, viewer = stack.start_gateway(), stack.start_viewer()
        stack.gateway_url, stack.viewer_url = gateway.url, viewer.url
        for name in RENDERERS:
            stack.start_renderer(name)
        for process in stack.processes.values():
            stack.wait_ready(process)
        yield stack
    finally:
        stack.stop_all()  # the namespace goes with the cluster's nodes
        print(stack.logs(40, problems_only=True))


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


class Readiness:
    """Polls every service's ``/readyz`` and records how long each was not ready after the kill."""

    def __init__(self, stack):
        self.urls = {name: process.url for name, process in stack.processes.items()}
        self.down_since: dict[str, float] = {}
        self.down_s: Counter = Counter()
        self.killed_at: float | None = None

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, url in self.urls.items():
                try:
                    async with session.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as response:
                        ready = response.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ready = False
                now = time.monotonic()
                if not ready and name not in self.down_since and self.killed_at is not None:
                    self.down_since[name] = now
                elif ready and name in self.down_since:
                    self.down_s[name] = max(self.down_s[name], now - self.down_since.pop(name))
            await asyncio.sleep(0.2)

    def summary(self) -> str:
        return ",".join(f"{name}:{self.down_s.get(name, 0.0):.1f}" for name in self.urls)


async def stream_results(url: str, namespace: str, job_ids: set[str]) -> tuple[Counter, Counter]:
    """Result events per job in the events stream (all, and ``done`` ones), read from the start."""
    results, done = Counter(), Counter()
    last = asyncio.Event()
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        stream = await channel.get_queue(topology.Names(namespace).events_stream, ensure=False)

        async def count(message) -> None:
            event = parse_event(message.body)
            if event.kind == "result" and event.job_id in job_ids:
                results[event.job_id] += 1
                done[event.job_id] += event.status == "done"
            last.set()
            await message.ack()

        tag = await stream.consume(count, arguments={"x-stream-offset": "first"})
        while True:  # until the deliveries pause
            last.clear()
            try:
                await asyncio.wait_for(last.wait(), 3)
            except TimeoutError:
                break
        await stream.cancel(tag)
    return results, done


async def viewer_history(session: aiohttp.ClientSession, viewer: str) -> dict[str, str]:
    """Job id -> status in the hello a newly opened viewer page gets."""
    async with session.ws_connect(f"{viewer}/ws", max_msg_size=0) as ws:
        hello = (await ws.receive()).json()
    assert hello["type"] == "hello"
    return {job["job_id"]: job["status"] for job in hello["jobs"]}


def refusal_window(stack) -> float:
    """Seconds from the gateway's first to its last refused job (503) after the kill: the publishing outage."""
    stamps = [
        datetime.fromisoformat(line.split('"timestamp": "')[1].split('"')[0])
        for line in stack.processes["gateway"].tail(100_000).splitlines()
        if '"job refused' in line and '"timestamp": "' in line
    ]
    return (max(stamps) - min(stamps)).total_seconds() if stamps else 0.0


def reconnect_times(stack) -> dict[str, float]:
    """The longest ``disconnected_s`` each service logged when its broker connection came back on another node."""
    found = {}
    for name, process in stack.processes.items():
        seconds = [float(s) for s in re.findall(r'"disconnected_s": ([0-9.]+)', process.tail(100_000))]
        if seconds:
            found[name] = max(seconds)
    return found


@pytest.mark.timeout(1200)
async def test_killing_the_jobs_queue_leader_mid_burst(cluster, cluster_stack, session):
    stack = cluster_stack
    names = topology.Names(stack.namespace)
    everyone = sorted(node.name for node in cluster.nodes)

    # Replicated to all three: the jobs and dead-letter quorum queues and the events stream.
    queues = await asyncio.to_thread(cluster.queues)
    for name, kind in (
        (names.jobs_queue, "quorum"),
        (names.dead_letter_queue, "quorum"),
        (names.events_stream, "stream"),
    ):
        assert queues[name]["type"] == kind and sorted(queues[name]["members"]) == everyone, queues[name]
    leader = cluster.node(queues[names.jobs_queue]["leader"])
    print(f"jobs queue led by {leader.name}; members {queues[names.jobs_queue]['members']}")

    run = Run("cluster: kill -9 of the jobs queue's leader", stack.gateway_url, stack.viewer_url)
    readiness = Readiness(stack)
    stop_probe = asyncio.Event()
    probe = asyncio.create_task(readiness.run(session, stop_probe))
    count = scaled(JOBS)
    try:
        async with run.watching(session):
            burst_started = time.monotonic()
            submitting = asyncio.create_task(
                run.submit_many(session, count, seconds_each=0.2, parallel=20, retry_for=60, spread_s=20)
            )
            # The leader once jobs flow (a CLI call takes seconds here, so before the kill point, not at it).
            assert await wait_until(lambda: len(run.accepted) >= count // 10, 120), "the burst did not get going"
            leader = cluster.node((await asyncio.to_thread(cluster.queues))[names.jobs_queue]["leader"])
            on_leader = await asyncio.to_thread(cluster.connection_count, leader)
            await wait_until(lambda: len(run.accepted) >= count // 3, 120)
            readiness.killed_at = killed_at = time.monotonic()
            accepted_at_kill = len(run.accepted)
            await asyncio.to_thread(cluster.kill, leader)
            await submitting
            burst_s = time.monotonic() - burst_started
            await run.wait_all_final(session, timeout=600)
            all_final_s = time.monotonic() - killed_at
    finally:
        stop_probe.set()
        with contextlib.suppress(asyncio.CancelledError):
            await probe

    survivors = cluster.alive()
    after = await asyncio.to_thread(cluster.queues, survivors[0])
    new_leader = after[names.jobs_queue]["leader"]
    results, done = await stream_results(survivors[0].url, stack.namespace, set(run.accepted))
    history = await viewer_history(session, stack.viewer_url)
    viewer_says = {}
    for job_id in run.accepted:
        async with session.get(f"{stack.viewer_url}/api/jobs/{job_id}") as response:
            viewer_says[job_id] = (await response.json())["status"] if response.status == 200 else response.status

    stream_duplicates = sum(1 for n in results.values() if n > 1)
    double_done = sum(1 for n in done.values() if n > 1)
    redelivered = sum(1 for result in run.final.values() if (result.get("attempt") or 1) > 1)
    run.extra.update(
        killed=leader.name,
        accepted_at_kill=accepted_at_kill,
        connections_on_killed_node=on_leader,
        new_leader=new_leader,
        burst_s=f"{burst_s:.1f}",
        final_after_kill_s=f"{all_final_s:.1f}",
        not_ready_s=readiness.summary(),
        reconnected_after_s=",".join(f"{k}:{v:.1f}" for k, v in reconnect_times(stack).items()),
        refusing_s=f"{refusal_window(stack):.1f}",
        slowest_503_s=f"{max(run.refusal_seconds, default=0.0):.1f}",
        redelivered=redelivered,
        stream_result_duplicates=stream_duplicates,
        stream_double_done=double_done,
    )
    run.summary()

    # The killed node comes back and rejoins; the cluster is whole again.
    await asyncio.to_thread(cluster.start_node, leader)
    running = await asyncio.to_thread(cluster.wait_running, len(cluster.nodes))
    SUMMARIES.append(f"[cluster] {leader.name} restarted and rejoined: running {running}")
    print(SUMMARIES[-1])

    assert run.lost == 0, f"{run.lost} accepted jobs never became final"
    assert run.duplicates == 0, "the viewer reported a job final more than once"
    assert len(run.accepted) == count, "every submission was eventually accepted (503s were retried)"
    assert all(result["status"] == "done" for result in run.final.values())
    assert new_leader != leader.name and new_leader in everyone
    assert all(process.proc.poll() is None for process in stack.processes.values()), "a service died"
    # Viewer history intact: every job, final, in what a new page gets and at /api/jobs/{id}.
    assert {job_id: history.get(job_id) for job_id in run.accepted} == {job_id: "done" for job_id in run.accepted}
    assert set(viewer_says.values()) == {"done"}, Counter(viewer_says.values())
    # The stream holds a result for every job; a second one is at-least-once redelivery (first wins).
    assert set(results) == set(run.accepted)
