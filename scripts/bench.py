"""``make bench``: latency and throughput of a real plotfarm, measured from the client's side.

Starts its own gateway and renderer(s) in a namespace of their own on the
broker (or measures an existing gateway with ``--gateway``), then:

1. renderer cold start: process start -> ready to take jobs, with the
   interpreter snapshot made (not stored), made and stored (a build's first
   start), and restored from the stored one (every start after);
2. for each workload (``--workloads``: ``seed``, the README's graph_objects
   scatter, and ``px``, a plotly.express figure of a pandas DataFrame):
   - warm latency: N sequential jobs ``--pause`` seconds apart (a fresh
     interpreter is waiting), client submit -> result in hand, median and p95;
   - back-to-back latency: N sequential jobs with no pause, the way an agent
     works (submit, wait, submit);
   - throughput: M jobs submitted at once, jobs per second until the last result;
3. figure in (the Kaleido use case, no Python at all): the same figures, made
   in CPython and exported to JSON, posted as figure jobs (``"figure"``) over
   HTTP: latency of sequential jobs (client submit -> result in hand, p50 and
   p95) and the throughput of a burst, beside Kaleido on the same figures;
4. Kaleido (plotly's own exporter, a persistent server on Debian's Chromium)
   rendering the same figures in the same run: per-figure latency and
   figures per second, the baseline the ratios are against.

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

from scripts.cpu import cpu_seconds, per_job_report
from tests.support import Api, new_stack

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WORKLOADS = {
    "seed": (EXAMPLES / "scatter.py").read_text(),
    "px": (EXAMPLES / "px_iris.py").read_text(),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"{name:<34} n={len(values):<4} median={statistics.median(values):8.1f} {unit}  "
        f"p95={percentile(values, 95):8.1f} {unit}  min={min(values):8.1f} {unit}"
    )


async def sequential(api: Api, code: str, jobs: int, pause: float) -> dict[str, list[float]]:
    client, server_total, run, svg, wait = [], [], [], [], []
    for _ in range(jobs):
        await asyncio.sleep(pause)
        started = time.perf_counter()
        result = await api.render(code)
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


async def throughput(api: Api, code: str, jobs: int) -> tuple[float, float]:
    started = time.perf_counter()
    accepted = await asyncio.gather(*(api.submit(code) for _ in range(jobs)))
    results = await asyncio.gather(*(api.result(a["job_id"], timeout=900) for a in accepted))
    elapsed = time.perf_counter() - started
    assert all(r["status"] == "done" for r in results), [r.get("error") for r in results if r["status"] != "done"][:3]
    return jobs / elapsed, elapsed


async def measure(gateway_url: str, args, processes: dict[str, int] | None = None) -> dict[str, dict[str, float]]:
    """Print the latency and throughput figures per workload; return the headline ones for the ratios.

    With ``processes`` (name -> pid of a service this run started), also the
    CPU per job of the burst, by process kind (scripts/cpu.py).
    """
    headline = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as session:
        api = Api(session, gateway_url)
        for name in args.workloads:
            code = WORKLOADS[name]
            for _ in range(3):  # let every interpreter run once
                await api.render(code)
            paced = await sequential(api, code, args.jobs, args.pause)
            print(f"-- {name}: {args.jobs} jobs {args.pause} s apart")
            for label, values in paced.items():
                print(summary(label, values))
            back_to_back = await sequential(api, code, args.jobs, 0)
            print(f"-- {name}: {args.jobs} jobs back to back")
            for label, values in back_to_back.items():
                print(summary(label, values))
            cpu_before = cpu_seconds(processes or {})
            rate, elapsed = await throughput(api, code, args.burst)
            print(f"{name + ': throughput (burst of ' + str(args.burst) + ')':<34} {rate:.1f} jobs/s ({elapsed:.1f} s)")
            if processes:
                print(f"-- {name}: CPU per job in the burst")
                print("\n".join(per_job_report(cpu_before, cpu_seconds(processes), args.burst)))
            paced_client, b2b_client = paced["client submit -> result"], back_to_back["client submit -> result"]
            headline[name] = {
                "p50": statistics.median(paced_client),
                "p95": percentile(paced_client, 95),
                "b2b_p50": statistics.median(b2b_client),
                "b2b_p95": percentile(b2b_client, 95),
                "rate": rate,
            }
    return headline


def workload_figure(name: str) -> dict:
    """The workload's figure as JSON, made in CPython (what ``fig.to_json()`` gives a user)."""
    from tests.oracle import run_user_code  # dev-only dependency

    return run_user_code(WORKLOADS[name])[0]


async def figure_job(session: aiohttp.ClientSession, gateway_url: str, figure: dict, formats: list[str]) -> dict:
    """One figure job end to end over HTTP: submit, then long-poll its result."""
    async with session.post(f"{gateway_url}/api/jobs", json={"figure": figure, "formats": formats}) as response:
        assert response.status == 202, f"{response.status}: {await response.text()}"
        job_id = (await response.json())["job_id"]
    while True:
        async with session.get(f"{gateway_url}/api/jobs/{job_id}", params={"wait": "20"}) as response:
            assert response.status == 200, f"{response.status}: {await response.text()}"
            view = await response.json()
        if view["status"] in ("done", "failed"):
            assert view["status"] == "done", view.get("error")
            return view


async def measure_figure_jobs(
    gateway_url: str, args, processes: dict[str, int] | None = None
) -> dict[str, dict[str, float]]:
    """Figure jobs (figure JSON in, no Python): sequential latency and a burst's throughput, per workload.

    With ``processes`` (name -> pid of a service this run started), also the CPU per job of the burst."""
    headline = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as session:
        for name in args.workloads:
            figure = workload_figure(name)
            for _ in range(5):  # every page draws once
                await figure_job(session, gateway_url, figure, args.figure_formats)
            client, server, svg = [], [], []
            for _ in range(args.jobs):
                started = time.perf_counter()
                view = await figure_job(session, gateway_url, figure, args.figure_formats)
                client.append((time.perf_counter() - started) * 1000)
                server.append(view["timings"]["total_ms"])
                svg.append(view["timings"]["svg_ms"])
            print(f"-- {name}: figure in ({', '.join(args.figure_formats)}), {args.jobs} jobs back to back")
            print(summary("client submit -> result", client))
            print(summary("server total (accept -> result)", server))
            print(summary("drawing on the page", svg))
            cpu_before = cpu_seconds(processes or {})
            started = time.perf_counter()
            await asyncio.gather(
                *(figure_job(session, gateway_url, figure, args.figure_formats) for _ in range(args.burst))
            )
            elapsed = time.perf_counter() - started
            rate = args.burst / elapsed
            print(f"{name + ': figure-in burst of ' + str(args.burst):<34} {rate:.1f} jobs/s ({elapsed:.1f} s)")
            if processes:
                print(f"-- {name}: CPU per figure job in the burst")
                print("\n".join(per_job_report(cpu_before, cpu_seconds(processes), args.burst)))
            headline[name] = {"p50": statistics.median(client), "p95": percentile(client, 95), "rate": rate}
    return headline


def print_figure_ratios(figures: dict[str, dict[str, float]], kaleido: dict[str, dict[str, float]], label: str) -> None:
    """The issue's goal, from numbers of this one run: throughput >= 5x Kaleido's, p50 <= 60 ms."""
    for name, ours in figures.items():
        line = (
            f"{name} figure in ({label}): p50 {ours['p50']:.0f} ms, p95 {ours['p95']:.0f} ms, {ours['rate']:.1f} jobs/s"
        )
        if name in kaleido:
            k = kaleido[name]
            line += (
                f"; Kaleido p50 {k['p50']:.0f} ms, p95 {k['p95']:.0f} ms, {k['rate']:.1f}/s: "
                f"throughput {ours['rate'] / k['rate']:.1f}x (goal >= 5x), latency {ours['p50'] / k['p50']:.2f}x"
            )
        line += f"; p50 goal <= 60 ms {'met' if ours['p50'] <= 60 else 'MISSED'}"
        print(line)


def bench_kaleido(args) -> dict[str, dict[str, float]]:
    """Kaleido's persistent server on the same figures (built in CPython), in this run."""
    from tests.oracle import KaleidoOracle, run_user_code  # dev-only dependency

    headline = {}
    print("\n== Kaleido (persistent server, Debian Chromium, SVG)")
    with KaleidoOracle() as kaleido:
        for name in args.workloads:
            figure = run_user_code(WORKLOADS[name])[0]
            for _ in range(3):
                kaleido.render(figure)
            latencies = []
            for _ in range(args.jobs):
                started = time.perf_counter()
                kaleido.render(figure)
                latencies.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            for _ in range(args.jobs):
                kaleido.render(figure)
            rate = args.jobs / (time.perf_counter() - started)
            print(summary(f"kaleido {name}: figure -> SVG", latencies))
            print(f"{'kaleido ' + name + ': throughput':<34} {rate:.1f} figures/s")
            headline[name] = {"p50": statistics.median(latencies), "p95": percentile(latencies, 95), "rate": rate}
    return headline


def print_pool_stats(stack) -> None:
    """The renderers' own numbers: how many interpreters were restored and how long each took."""
    for name, process in stack.processes.items():
        if name.startswith("bench-renderer"):
            with urllib.request.urlopen(f"{process.url}/stats", timeout=10) as response:
                pool = json.loads(response.read())["pool"]
            print(
                f"{name}: interpreters restored {pool['restores']}, restore median {pool['restoreMsMedian'] or 0:.0f} ms "
                f"p95 {pool['restoreMsP95'] or 0:.0f} ms, snapshot {pool['snapshotMs']:.0f} ms, reused {pool['reused']}"
            )


def bench_isolation(isolation: str, amqp_url: str, args) -> dict[str, float]:
    """One stack (gateway + renderers) in its own broker namespace, measured and torn down."""
    stack = new_stack(
        amqp_url,
        Path(tempfile.mkdtemp(prefix="plotfarm-bench-")),
        # An empty snapshot store of its own: the first start below makes and stores the snapshot.
        PLOTFARM_SNAPSHOT_STORE_DIR=tempfile.mkdtemp(prefix="plotfarm-bench-snapshots-"),
        PLOTFARM_RENDERER_CONCURRENCY=args.concurrency,
        PLOTFARM_ISOLATION=isolation,
        PLOTFARM_PARALLEL_RESTORES=args.parallel_restores,
        PLOTFARM_SPARE_INTERPRETERS=args.spares,
    )
    try:
        gateway = stack.start_gateway()
        stack.wait_ready(gateway)
        first_starts = {}
        for label, extra in (
            ("snapshot made, not stored", {"PLOTFARM_STORED_SNAPSHOT": "false"}),
            ("snapshot made and stored", {}),  # a build's first start
        ):
            started = time.perf_counter()
            renderer = stack.start_renderer(f"bench-cold-{len(first_starts)}", **extra)
            stack.wait_ready(renderer)
            first_starts[label] = (time.perf_counter() - started) * 1000
            renderer.stop()
            del stack.processes[renderer.name]
        cold = []  # these restore the stored snapshot
        for n in range(args.renderers):
            started = time.perf_counter()
            renderer = stack.start_renderer(f"bench-renderer-{n + 1}")
            stack.wait_ready(renderer)
            cold.append((time.perf_counter() - started) * 1000)
        print(
            f"\n== isolation={isolation} renderers={args.renderers} concurrency={args.concurrency} "
            f"parallel_restores={args.parallel_restores} spares={args.spares or args.concurrency} pause={args.pause}s "
            f"logs={stack.log_dir}"
        )
        for label, ms in first_starts.items():
            print(f"{'renderer cold start, ' + label:<34} {ms:8.1f} ms")
        print(summary("renderer cold start, snapshot stored", cold))
        services = {name: process.proc.pid for name, process in stack.processes.items()}
        headline = {} if args.figures_only else asyncio.run(measure(gateway.url, args, services))
        if not args.no_figure_jobs:
            print(f"\n-- figure jobs (isolation={isolation}: it does not apply, no interpreter is involved)")
            headline["figure jobs"] = asyncio.run(measure_figure_jobs(gateway.url, args, services))
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
    parser.add_argument("--workloads", default="seed,px", help=f"comma-separated: {', '.join(WORKLOADS)}")
    parser.add_argument("--no-kaleido", action="store_true", help="skip the Kaleido baseline")
    parser.add_argument("--parallel-restores", type=int, default=2)
    parser.add_argument("--spares", type=int, default=0, help="fresh interpreters kept ready (0: = concurrency)")
    parser.add_argument("--no-figure-jobs", action="store_true", help="skip the figure-in section")
    parser.add_argument("--figures-only", action="store_true", help="only the figure-in section (and Kaleido)")
    parser.add_argument("--figure-formats", default="svg", help="comma-separated formats the figure jobs ask for")
    parser.add_argument(
        "--pause", type=float, default=1.5, help="seconds between paced sequential jobs (lets the pool refill)"
    )
    args = parser.parse_args()
    args.workloads = [name.strip() for name in args.workloads.split(",") if name.strip()]
    args.figure_formats = [fmt.strip() for fmt in args.figure_formats.split(",") if fmt.strip()]
    if unknown := set(args.workloads) - set(WORKLOADS):
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    if args.gateway:
        if not args.figures_only:
            asyncio.run(measure(args.gateway, args))
        if not args.no_figure_jobs:
            asyncio.run(measure_figure_jobs(args.gateway, args))
        return

    modes = [mode.strip() for mode in args.isolation.split(",") if mode.strip()]
    if unknown := set(modes) - {"job", "tenant", "none"}:
        parser.error(f"unknown isolation mode(s): {', '.join(sorted(unknown))}")
    amqp_url = os.environ.get("PLOTFARM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    kaleido = {} if args.no_kaleido else bench_kaleido(args)
    results = {mode: bench_isolation(mode, amqp_url, args) for mode in modes}
    print()
    figure_modes = {mode: numbers.pop("figure jobs") for mode, numbers in results.items() if "figure jobs" in numbers}
    for mode, figures in figure_modes.items():
        print_figure_ratios(figures, kaleido, f"isolation={mode}")
    if args.figures_only:
        return
    for name in args.workloads:
        for mode, numbers in results.items():
            line = (
                f"{name} {mode}: paced p50 {numbers[name]['p50']:.0f} ms, back-to-back p50 {numbers[name]['b2b_p50']:.0f} ms "
                f"p95 {numbers[name]['b2b_p95']:.0f} ms, burst {numbers[name]['rate']:.1f} jobs/s"
            )
            if name in kaleido:
                k = kaleido[name]
                line += (
                    f"; vs Kaleido (p50 {k['p50']:.0f} ms, {k['rate']:.1f}/s): back-to-back latency "
                    f"{numbers[name]['b2b_p50'] / k['p50']:.2f}x, throughput {numbers[name]['rate'] / k['rate']:.2f}x"
                )
            print(line)
        if "seed" in args.workloads and name != "seed":
            for mode, numbers in results.items():
                print(
                    f"{name} vs seed ({mode}): paced p50 {numbers[name]['p50'] / numbers['seed']['p50']:.2f}x, "
                    f"back-to-back p50 {numbers[name]['b2b_p50'] / numbers['seed']['b2b_p50']:.2f}x, "
                    f"throughput {numbers[name]['rate'] / numbers['seed']['rate']:.2f}x"
                )
    if len(results) > 1:
        base_mode, base = next(iter(results.items()))
        for mode, numbers in list(results.items())[1:]:
            for name in args.workloads:
                print(
                    f"{name}: {base_mode} vs {mode}: paced p50 {base[name]['p50'] / numbers[name]['p50']:.1f}x, "
                    f"throughput {base[name]['rate'] / numbers[name]['rate']:.2f}x"
                )


if __name__ == "__main__":
    main()
