"""What loading MathJax costs a job without LaTeX: the renderer page with and without it.

    python -m scripts.bench_mathjax [--jobs 40] [--rounds 2]

Each variant runs in its own process (the renderer page and its asset server
read ``PLOTFARM_WEB_DIR``): "mathjax" is ``web/`` as shipped; "none" is a copy
of it whose renderer page has no MathJax script tags (everything else is a
symlink to the real files). Rounds alternate the variants so the machine's
drift falls on both. Printed per variant: page start (s), the median and p95
of a plain job's render time (ms), and the page's JS heap (MB).
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared.settings import PROJECT_ROOT

PLAIN = "import plotly.graph_objects as go\ngo.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2])).update_layout(title='plain').show()"


# Between jobs, so the pool has refilled and each job measures its own work.
PAUSE_S = 1.5
# The line renderer.mjs waits for MathJax with; the variant without MathJax drops it.
MATHJAX_WAIT = "mathJax = scopeMathJax(await window.plotfarmMathJax);"
NO_MATHJAX = "mathJax = { endJob() {} };"


def web_dir_without_mathjax(root: Path) -> Path:
    """A web directory like ours whose renderer page does not load MathJax."""
    web = PROJECT_ROOT / "web"
    for entry in web.iterdir():
        if entry.name != "renderer":
            (root / entry.name).symlink_to(entry)
    shutil.copytree(web / "renderer", root / "renderer")
    page = root / "renderer" / "index.html"
    lines = [line for line in page.read_text().splitlines(keepends=True) if "mathjax" not in line.lower()]
    page.write_text("".join(lines))
    renderer = root / "renderer" / "renderer.mjs"
    source = renderer.read_text()
    if MATHJAX_WAIT not in source:
        raise SystemExit(f"renderer.mjs no longer waits with {MATHJAX_WAIT!r}: update this script")
    renderer.write_text(source.replace(MATHJAX_WAIT, NO_MATHJAX))
    return root


async def measure(jobs: int) -> dict:
    """One variant, in this process: start the page, render ``jobs`` plain jobs one by one."""
    from services.renderer.browser import HeadlessBrowser
    from services.renderer.pages import PagePool
    from shared.messages import RenderJob, utcnow
    from shared.settings import get_settings

    settings = get_settings().model_copy(update={"renderer_concurrency": 1})
    page = PagePool(HeadlessBrowser(settings), settings)
    started = time.perf_counter()
    await page.start()
    start_s = time.perf_counter() - started
    times = []
    for n in range(jobs):
        await asyncio.sleep(PAUSE_S)  # a fresh interpreter is waiting: time the job, not the restore
        job = RenderJob(job_id=f"mj-{n}", code=PLAIN, width=700, height=450, timeout_s=20, submitted_at=utcnow())
        started = time.perf_counter()
        out = await page.render(job)
        times.append((time.perf_counter() - started) * 1000)
        assert out.error is None, out.error
    heap = await page.pages[0].page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
    await page.stop()
    times = times[2:]  # the first jobs warm the JIT either way
    return {
        "start_s": start_s,
        "median_ms": statistics.median(times),
        "p95_ms": statistics.quantiles(times, n=20)[-1],
        "heap_mb": heap / 1e6,
    }


def run_variant(web_dir: Path | None, jobs: int) -> dict:
    env = dict(os.environ, PLOTFARM_LOG_LEVEL="WARNING")
    if web_dir is not None:
        env["PLOTFARM_WEB_DIR"] = str(web_dir)
    out = subprocess.run(
        [sys.executable, "-m", "scripts.bench_mathjax", "--measure", str(jobs)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40, help="plain jobs per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # internal: one variant in this process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure))))
        return
    results: dict[str, list[dict]] = {"mathjax": [], "none": []}
    with tempfile.TemporaryDirectory() as tmp:
        # Readable by the user Chromium and the asset server run as when we are root.
        os.chmod(tmp, 0o755)
        bare = web_dir_without_mathjax(Path(tmp))
        for _ in range(args.rounds):
            results["mathjax"].append(run_variant(None, args.jobs))
            results["none"].append(run_variant(bare, args.jobs))
    print(f"{'variant':<10}{'start s':>9}{'p50 ms':>9}{'p95 ms':>9}{'heap MB':>9}")
    summary = {}
    for name, runs in results.items():
        row = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        summary[name] = row
        print(f"{name:<10}{row['start_s']:>9.2f}{row['median_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['heap_mb']:>9.1f}")
    ratio = summary["mathjax"]["median_ms"] / summary["none"]["median_ms"]
    print(f"plain job with MathJax loaded / without: {ratio:.2f}x (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
