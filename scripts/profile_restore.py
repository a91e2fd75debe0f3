"""Where a restore's time goes: the renderer page's pool, phase by phase.

    python -m scripts.profile_restore [--jobs 30] [--pause 1.5] [--isolation job]
    python -m scripts.profile_restore --pss      # memory per spare interpreter
    python -m scripts.profile_restore --cpu-profile   # what a restoring worker's thread does

Starts one renderer page (real Chromium, real Pyodide), renders ``--jobs``
seed scatters one after another (``--pause`` seconds apart; 0 is
back-to-back), then prints the median and p95 of every restore phase the
page recorded (interpreter-worker.mjs, ``restoreInterpreter``) and of the
jobs' own timings. Numbers are for one run on a noisy machine: compare
variants in alternating runs.

``--pss`` instead starts the page twice, with 1 and with 6 spare
interpreters, waits until each pool is full and idle, and prints the
proportional set size (PSS, shared pages split between the processes that
map them) of all of Chromium's processes: the difference over 5 is what one
more spare costs.

``--cpu-profile`` also runs V8's sampling profiler in every worker restored
during the jobs and prints where the mean worker's thread spent its time
(scripts/worker_profile.py); the profiler slows what it measures a little.
"""

import argparse
import asyncio
import json
import os
import statistics
import time

from shared import procfs

SEED = (
    "import plotly.graph_objects as go\n"
    "fig = go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[10, 11, 12, 13], mode='lines+markers'))\n"
    "fig.update_layout(title='seed')\nfig.show()\n"
)
PX = (
    "import plotly.express as px\n"
    "df = px.data.iris()\n"
    "px.scatter(df, x='sepal_width', y='sepal_length', color='species').show()\n"
)


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f}  p95 {p95:7.1f}  n={len(ordered)}"


async def profile(args) -> dict:
    from services.renderer.browser import HeadlessBrowser
    from services.renderer.pages import PagePool
    from shared.messages import RenderJob, utcnow
    from shared.settings import get_settings

    # One page, as before renderers had one per job in flight: its restores are what is measured.
    settings = get_settings().model_copy(update={"renderer_concurrency": 1})
    browser = HeadlessBrowser(settings)
    new_page = browser.new_page

    async def new_page_with_console(stored_snapshot: str | None = None, **options):
        opened = await new_page(stored_snapshot, **options)
        opened.on("console", lambda msg: msg.type == "error" and print(f"page console: {msg.text[:2000]}"))
        return opened

    browser.new_page = new_page_with_console
    page = PagePool(browser, settings)
    started = time.perf_counter()
    await page.start()
    start_s = time.perf_counter() - started
    profiler = None
    if args.cpu_profile:
        from scripts.worker_profile import WorkerProfiler

        profiler = WorkerProfiler(page.pages[0].page)
        await profiler.start()
    code = PX if args.workload == "px" else SEED
    jobs: dict[str, list[float]] = {"end_to_end_ms": [], "wait_ms": [], "run_ms": [], "svg_ms": []}
    for n in range(args.jobs):
        await asyncio.sleep(args.pause)
        job = RenderJob(job_id=f"prof-{n}", code=code, width=700, height=450, timeout_s=20, submitted_at=utcnow())
        t0 = time.perf_counter()
        out = await page.render(job)
        jobs["end_to_end_ms"].append((time.perf_counter() - t0) * 1000)
        assert out.error is None, out.error
        for key in ("wait_ms", "run_ms", "svg_ms"):
            jobs[key].append(getattr(out.timings, key))
    stats = await page.pages[0].stats()
    profiles = []
    if profiler is not None:
        await profiler.stop()
        profiles = profiler.profiles
    await page.stop()
    return {
        "start_s": start_s,
        "start": page.start_timings,
        "jobs": jobs,
        "phases": stats["recentRestorePhases"],
        "profiles": profiles,
    }


def chromium_pss_mb() -> float:
    """PSS of every process under this one (Chromium and its helpers), from /proc/*/smaps_rollup."""
    total_kb = 0
    for pid in procfs.descendants(os.getpid()):
        try:
            total_kb += procfs.pss_kb(pid)
        except OSError:
            continue
    return total_kb / 1024


async def pool_pss(spares: int) -> float:
    from services.renderer.browser import HeadlessBrowser
    from services.renderer.pages import PagePool
    from shared.settings import Settings

    settings = Settings(isolation="job", spare_interpreters=spares, renderer_concurrency=1)
    page = PagePool(HeadlessBrowser(settings), settings)
    await page.start()
    try:
        for _ in range(600):
            stats = await page.pages[0].stats()
            if stats["fresh"] >= spares and not stats["restoring"]:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # let the snapshot maker's memory go
        return await asyncio.to_thread(chromium_pss_mb)
    finally:
        await page.stop()


def report_pss() -> None:
    few, many = asyncio.run(pool_pss(1)), asyncio.run(pool_pss(6))
    print(f"chromium PSS: {few:.0f} MB with 1 spare, {many:.0f} MB with 6 spares")
    print(f"PSS per spare interpreter: {(many - few) / 5:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--pause", type=float, default=1.5)
    parser.add_argument("--workload", choices=["seed", "px"], default="seed")
    parser.add_argument("--isolation", choices=["job", "tenant", "none"], default="job")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--pss", action="store_true", help="measure the memory (PSS) of a spare interpreter instead")
    parser.add_argument("--cpu-profile", action="store_true", help="also profile each restored worker's thread")
    args = parser.parse_args()
    if args.pss:
        report_pss()
        return
    os.environ["PLOTFARM_ISOLATION"] = args.isolation
    result = asyncio.run(profile(args))
    print(f"page start {result['start_s']:.2f} s  {json.dumps(result['start'])}")
    for key, values in result["jobs"].items():
        print(f"job {key:<16} {spread(values[2:])}")
    phases = result["phases"][1:]  # the first restore races the snapshot's clean-up
    for key in sorted({k for phase in phases for k, v in phase.items() if isinstance(v, int | float)}):
        print(f"restore {key:<14} {spread([p[key] for p in phases if key in p])}")
    if args.cpu_profile:
        from scripts.worker_profile import report

        print("\n".join(report(result["profiles"])))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out)


if __name__ == "__main__":
    main()
