"""The measuring tools `make bench` and scripts/profile_restore.py report with."""

import os
import subprocess
import sys
import time

from scripts.cpu import classify, cpu_seconds, kind_of, per_job_report
from scripts.worker_profile import report
from shared.procfs import descendants


def test_cpu_of_a_child_that_burns_is_counted_under_its_parent():
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"]
    )
    try:
        assert burner.pid in descendants(os.getpid())
        before = cpu_seconds({"tests": os.getpid()})
        time.sleep(0.3)
        during = cpu_seconds({"tests": os.getpid()})
        burner_kind = kind_of(burner.pid, os.getpid(), "tests")
    finally:
        burner.wait(10)
    assert burner_kind.startswith("python")
    assert during[burner_kind] > before[burner_kind]  # its ticks, read from /proc while it runs


def test_per_job_report_divides_by_jobs_and_bounds_the_rate():
    before = {"renderer": 1.0, "chromium renderer (page + interpreter workers)": 10.0}
    after = {"renderer": 2.0, "chromium renderer (page + interpreter workers)": 30.0}
    lines = per_job_report(before, after, jobs=100)
    assert lines[0].split() == ["200.0", "ms", "chromium", "renderer", "(page", "+", "interpreter", "workers)"]
    assert lines[1].split()[:3] == ["10.0", "ms", "renderer"]
    cores = os.cpu_count()
    assert f"210.0 ms  in all: at most {cores * 1000 / 210:.1f} jobs/s on {cores} cores" in lines[-1]


def test_worker_profile_report_is_inclusive_top_down_and_averaged():
    # (root) -> restore -> copy; (root) -> (idle). restore 2 ms of its own, copy 4 ms, idle 0 (the last sample).
    nodes = [
        {"id": 1, "callFrame": {"functionName": "(root)", "url": "", "lineNumber": -1}, "children": [2, 4]},
        {"id": 2, "callFrame": {"functionName": "restore", "url": "x/w.mjs", "lineNumber": 9}, "children": [3]},
        {"id": 3, "callFrame": {"functionName": "copy", "url": "x/w.mjs", "lineNumber": 19}},
        {"id": 4, "callFrame": {"functionName": "(idle)", "url": "", "lineNumber": -1}},
    ]
    samples = [2, 3, 3, 4]
    deltas = [0, 2000, 2000, 2000]  # each sample lasts until the next; the last one 0
    profile = {"nodes": nodes, "samples": samples, "timeDeltas": deltas}
    lines = report([profile, profile], min_ms=0.5)
    assert lines[0].startswith("2 workers")
    table = [line.split() for line in lines[1:]]
    assert table == [["6.0", "restore", "w.mjs:10"], ["4.0", "copy", "w.mjs:20"]]
    assert report([]) == ["no worker profiles"]


def test_the_asset_server_is_not_counted_as_chromium():
    """The launcher's fork keeps the launcher's command line, which names Chromium's binary too."""
    launcher = "/venv/bin/python -m services.renderer.launcher --port 8731 --chromium /usr/bin/chromium --"
    assert classify(launcher) == "asset server"
    assert classify("/usr/lib/chromium/chromium --type=renderer --lang=en-US").startswith("chromium renderer")
    assert classify("/usr/lib/chromium/chromium --type=gpu-process").startswith("chromium other")
    assert classify("/venv/lib/python3.11/site-packages/playwright/driver/node cli.js") == "playwright driver"
