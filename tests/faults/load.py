"""Load and bookkeeping for the fault-injection tests.

A run submits jobs through the real gateway, remembers which were accepted
(202: the promise starts there), watches the viewer's WebSocket to see how
often each job is *reported* final, and at the end waits for every accepted
job to reach a final result. ``lost`` and ``duplicates`` must both be zero.
"""

import asyncio
import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

SCALE = float(os.environ.get("PLOTFARM_CHAOS_SCALE", "1"))
# About 0.3 s of work per job, so faults land while jobs are in flight.
SLOW_JOB = (
    "import time\nimport plotly.graph_objects as go\nstarted = time.time()\n"
    "while time.time() - started < {seconds}:\n    pass\n"
    "fig = go.Figure(go.Scatter(y=[1, 3, 2]))\nfig.update_layout(title='job {n}')\nfig.show()\n"
)

# Every run's summary line, printed again at the end of the pytest session (see conftest).
SUMMARIES: list[str] = []


def scaled(count: int) -> int:
    return max(1, int(count * SCALE))


@dataclass
class Run:
    name: str
    gateway: str
    viewer: str | None = None
    attempted: int = 0
    accepted: dict[str, int] = field(default_factory=dict)  # job_id -> n
    refused: int = 0  # refused attempts (503 or unreachable); a refused job may be retried
    refusal_seconds: list[float] = field(default_factory=list)
    final: dict[str, dict] = field(default_factory=dict)
    reported_final: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def watching(self, session: aiohttp.ClientSession):
        """Watch the viewer for the whole block (and a moment after, for late reports)."""
        stop = asyncio.Event()
        watcher = asyncio.create_task(self.watch_viewer(session, stop))
        await asyncio.sleep(1)  # connected before the first job
        try:
            yield
        finally:
            await asyncio.sleep(2)
            stop.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def watch_viewer(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Count every time the viewer reports a job as final (reconnecting as a page would)."""
        since = None
        while not stop.is_set():
            try:
                url = f"{self.viewer}/ws" + (f"?since={since}" if since is not None else "")
                async with session.ws_connect(url, heartbeat=10, max_msg_size=0) as ws:
                    async for message in ws:
                        data = message.json()
                        jobs = data["jobs"] if data["type"] == "hello" else [data["job"]]
                        if data["type"] == "hello" and since is None:
                            jobs = []  # history from before this run
                        since = data["offset"] if data["type"] == "hello" else max(since or -1, data["offset"])
                        for job in jobs:
                            if job["status"] in ("done", "failed"):
                                self.reported_final[job["job_id"]] += 1
                        if stop.is_set():
                            return
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                await asyncio.sleep(0.5)

    async def submit(
        self,
        session: aiohttp.ClientSession,
        code: str,
        n: int,
        retry_until: float | None = None,
        *,
        timeout_s: float = 30,
    ) -> None:
        """One job; refusals (503, or the gateway unreachable) are counted, and retried until ``retry_until``."""
        while True:
            started = time.monotonic()
            try:
                request = {"code": code, "timeout_s": timeout_s}
                async with session.post(f"{self.gateway}/api/jobs", json=request) as response:
                    if response.status == 202:
                        self.accepted[(await response.json())["job_id"]] = n
                        return
                    body = await response.text()
                    assert response.status == 503, f"{response.status}: {body}"
            except (TimeoutError, aiohttp.ClientConnectionError):
                pass
            self.refused += 1
            self.refusal_seconds.append(time.monotonic() - started)
            if retry_until is None or time.monotonic() > retry_until:
                return
            await asyncio.sleep(0.5)

    async def submit_many(
        self,
        session,
        count: int,
        *,
        seconds_each: float = 0.3,
        parallel: int = 50,
        retry_for: float | None = None,
        spread_s: float = 0.0,
    ) -> None:
        gate = asyncio.Semaphore(parallel)
        self.attempted += count

        async def one(n: int) -> None:
            if spread_s:
                await asyncio.sleep(spread_s * n / count)
            async with gate:
                until = time.monotonic() + retry_for if retry_for else None
                await self.submit(session, SLOW_JOB.format(seconds=seconds_each, n=n), n, until)

        await asyncio.gather(*(one(n) for n in range(count)))

    async def wait_all_final(self, session: aiohttp.ClientSession, timeout: float, stall_s: float = 180) -> None:
        """Wait until every accepted job is final, for ``timeout`` at most.

        Gives up earlier when no job became final for ``stall_s``: a system that
        has stopped making progress is not going to finish, and waiting out the
        whole timeout only makes a red run slower to report.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_progress = loop.time()
        gate = asyncio.Semaphore(50)

        def give_up() -> bool:
            return loop.time() > deadline or loop.time() - last_progress > stall_s

        async def wait_one(job_id: str) -> None:
            nonlocal last_progress
            async with gate:
                while not give_up():
                    try:
                        wait = max(0.0, min(20.0, deadline - loop.time()))
                        async with session.get(
                            f"{self.gateway}/api/jobs/{job_id}", params={"wait": f"{wait:.1f}"}
                        ) as r:
                            if r.status == 200:
                                status = await r.json()
                                if status["status"] in ("done", "failed"):
                                    self.final[job_id] = status
                                    last_progress = loop.time()
                                    return
                            elif r.status not in (404, 503):
                                raise AssertionError(f"{r.status}: {await r.text()}")
                    except (TimeoutError, aiohttp.ClientError):
                        await asyncio.sleep(1)

        await asyncio.gather(*(wait_one(job_id) for job_id in list(self.accepted)))
        self.seconds = time.monotonic() - self.started
        if loop.time() - last_progress > stall_s:
            self.extra["gave_up"] = f"no job became final for {stall_s:.0f} s"

    @property
    def lost(self) -> int:
        return len(set(self.accepted) - set(self.final))

    @property
    def duplicates(self) -> int:
        return sum(1 for count in self.reported_final.values() if count > 1)

    def summary(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.extra.items())
        line = (
            f"[{self.name}] submitted={self.attempted} accepted={len(self.accepted)} "
            f"refused={self.refused} final={len(self.final)} lost={self.lost} duplicates={self.duplicates} "
            f"seconds={self.seconds:.1f}{extra}"
        )
        print(line)
        SUMMARIES.append(line)
        return line
