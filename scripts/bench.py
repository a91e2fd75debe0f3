"""``make bench``: latency and throughput of a real plotfarm, measured from the client's side.

Starts its own gateway and renderer(s) in a namespace of their own on the
broker (or measures an existing gateway with ``--gateway``), then:

1. renderer cold start: process start -> ready to take jobs;
2. warm latency: N sequential jobs, client submit -> result in hand
   (POST, then a long-poll GET), median and p95;
3. throughput: M jobs submitted at once, jobs per second until the last result.

With several ``--isolation`` modes (default ``job,none``) it measures each with
a stack of its own, one after the other, and ends with the ratios between them.
This machine is noisy: compare numbers from one run, not across runs.
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from tests.support import Api, new_stack

SEED = Path(__file__).resolve().parent.parent.joinpath("examples", "scatter.py").read_text()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"{name:<34} n={len(values):<4} median={statistics.median(values):8.1f} {unit}  "
        f"p95={percentile(values, 95):8.1f} {unit}  min={min(values):8.1f} {unit}"
    )


async def warm_latency(api: Api, jobs: int, pause: float) -> dict[str, list[float]]:
    client, server_total, run, svg, wait = [], [], [], [], []
    for _ in range(jobs):
        await asyncio.sleep(pause)
        started = time.perf_counter()
        result = await api.render(SEED)
        client.append((time.perf_counter() - started) * 1000)
        assert result["status"] == "done", result.get("error")
        server_total.append(result["timings"]["total_ms"])
        run.append(result["timings"]["run_ms"])
        svg.append(result["timings"]["svg_ms"])
        wait.append(result["timings"].get("wait_ms", 0.0))
    return {
        "client submit -> result": client,
        "server total (accept -> result)": server_total,
        "wait for a fresh interpreter": wait,
        "python run": run,
        "svg": svg,
    }


async def throughput(api: Api, jobs: int) -> tuple[float, float]:
    started = time.perf_counter()
    accepted = await asyncio.gather(*(api.submit(SEED) for _ in range(jobs)))
    results = await asyncio.gather(*(api.result(a["job_id"], timeout=600) for a in accepted))
    elapsed = time.perf_counter() - started
    assert all(r["status"] == "done" for r in results)
    return jobs / elapsed, elapsed


async def measure(gateway_url: str, args) -> dict[str, float]:
    """Print the latency and throughput figures; return the headline ones for the ratios."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
        api = Api(session, gateway_url)
        for _ in range(3):  # let every interpreter run once
            await api.render(SEED)
        latencies = await warm_latency(api, args.jobs, args.pause)
        for name, values in latencies.items():
            print(summary(name, values))
        rate, elapsed = await throughput(api, args.burst)
        print(f"{'throughput (burst of ' + str(args.burst) + ')':<34} {rate:.1f} jobs/s ({elapsed:.1f} s)")
    client = latencies["client submit -> result"]
    return {"p50": statistics.median(client), "p95": percentile(client, 95), "rate": rate}


def print_pool_stats(stack) -> None:
    """The renderers' own numbers: how many interpreters were restored and how long each took."""
    for name, process in stack.processes.items():
        if name.startswith("bench-renderer"):
            with urllib.request.urlopen(f"{process.url}/stats", timeout=10) as response:
                pool = json.loads(response.read())["pool"]
            print(
                f"{name}: interpreters restored {pool['boots']}, restore median {pool['bootMsMedian'] or 0:.0f} ms "
                f"p95 {pool['bootMsP95'] or 0:.0f} ms, template {pool['templateMs']:.0f} ms, reused {pool['reused']}"
            )


def bench_isolation(isolation: str, amqp_url: str, args) -> dict[str, float]:
    """One stack (gateway + renderers) in its own broker namespace, measured and torn down."""
    stack = new_stack(
        amqp_url,
        Path(tempfile.mkdtemp(prefix="plotfarm-bench-")),
        PLOTFARM_RENDERER_CONCURRENCY=args.concurrency,
        PLOTFARM_ISOLATION=isolation,
        PLOTFARM_PARALLEL_BOOTS=args.parallel_boots,
        PLOTFARM_SPARE_INTERPRETERS=args.spares,
    )
    try:
        gateway = stack.start_gateway()
        stack.wait_ready(gateway)
        cold = []
        for n in range(args.renderers):
            started = time.perf_counter()
            renderer = stack.start_renderer(f"bench-renderer-{n + 1}")
            stack.wait_ready(renderer)
            cold.append((time.perf_counter() - started) * 1000)
        print(
            f"\n== isolation={isolation} renderers={args.renderers} concurrency={args.concurrency} "
            f"parallel_boots={args.parallel_boots} spares={args.spares or args.concurrency} pause={args.pause}s "
            f"logs={stack.log_dir}"
        )
        print(summary("renderer cold start (to ready)", cold))
        headline = asyncio.run(measure(gateway.url, args))
        print_pool_stats(stack)
        return headline
    finally:
        stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", help="measure this running gateway instead of starting one")
    parser.add_argument("--jobs", type=int, default=50, help="sequential jobs for the latency figures")
    parser.add_argument("--burst", type=int, default=200, help="jobs submitted at once for throughput")
    parser.add_argument("--renderers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=2, help="jobs in flight per renderer")
    parser.add_argument("--isolation", default="job,none", help="comma-separated: job, tenant, none")
    parser.add_argument("--parallel-boots", type=int, default=2)
    parser.add_argument("--spares", type=int, default=0, help="fresh interpreters kept ready (0: = concurrency)")
    parser.add_argument(
        "--pause", type=float, default=1.5, help="seconds between sequential jobs (lets the pool refill)"
    )
    args = parser.parse_args()
    if args.gateway:
        asyncio.run(measure(args.gateway, args))
        return

    modes = [mode.strip() for mode in args.isolation.split(",") if mode.strip()]
    if unknown := set(modes) - {"job", "tenant", "none"}:
        parser.error(f"unknown isolation mode(s): {', '.join(sorted(unknown))}")
    amqp_url = os.environ.get("PLOTFARM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    results = {mode: bench_isolation(mode, amqp_url, args) for mode in modes}
    if len(results) > 1:
        base_mode, base = next(iter(results.items()))
        print()
        for mode, numbers in list(results.items())[1:]:
            print(
                f"{base_mode} vs {mode}: latency p50 {base['p50'] / numbers['p50']:.1f}x "
                f"({base['p50']:.0f} / {numbers['p50']:.0f} ms), p95 {base['p95'] / numbers['p95']:.1f}x, "
                f"throughput {base['rate'] / numbers['rate']:.2f}x ({base['rate']:.1f} / {numbers['rate']:.1f} jobs/s)"
            )


if __name__ == "__main__":
    main()
