"""CPU time of plotfarm's processes and everything they started, by kind, from /proc.

``make bench`` takes a reading before and after a burst and divides by the
jobs: CPU per job, and what that allows on this machine's cores. Throughput
on a small machine is CPU-bound, so this says where a job's cost is (the
renderer page with its interpreter workers, the rest of Chromium, the
Python services) better than any latency does.
"""

import os
from collections import Counter

from shared import procfs


def kind_of(pid: int, root: int, root_name: str) -> str:
    """What a process is, from its command line (Chromium rewrites its own into one string)."""
    if pid == root:
        return root_name
    try:
        return classify(" ".join(procfs.command_line(pid)))
    except OSError:
        return "gone"


def classify(command: str) -> str:
    """The kind of process a command line (arguments joined by spaces) belongs to."""
    # The asset server is the launcher's fork: its command line names Chromium too, so it goes first.
    if "services.renderer.launcher" in command:
        return "asset server"
    if "--type=renderer" in command:
        return "chromium renderer (page + interpreter workers)"
    if "chrom" in command:
        return "chromium other (browser, network, GPU, zygotes)"
    if "playwright/driver" in command:
        return "playwright driver"
    return os.path.basename(command.split(" ", 1)[0])


def cpu_seconds(roots: dict[str, int]) -> Counter:
    """User + system CPU seconds so far of each root's tree, summed by :func:`kind_of`.

    Processes that exited before the reading are not counted (Chromium keeps
    its processes; interpreter workers are threads of the renderer process).
    """
    seconds = Counter()
    for name, root in roots.items():
        for pid in [root, *procfs.descendants(root)]:
            try:
                spent = procfs.cpu_seconds(pid)
            except OSError:
                continue
            seconds[kind_of(pid, root, name)] += spent
    return seconds


def per_job_report(before: Counter, after: Counter, jobs: int) -> list[str]:
    """Lines: CPU ms per job by kind, the total, and the jobs/s this machine's cores allow at that cost."""
    spent = {kind: (after[kind] - before[kind]) * 1000 / jobs for kind in after if after[kind] > before[kind]}
    total = sum(spent.values())
    lines = [f"  {ms:7.1f} ms  {kind}" for kind, ms in sorted(spent.items(), key=lambda item: -item[1])]
    cores = os.cpu_count() or 1
    lines.append(f"  {total:7.1f} ms  in all: at most {cores * 1000 / total:.1f} jobs/s on {cores} cores")
    return lines
