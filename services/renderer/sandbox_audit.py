"""What Chromium's processes actually got, as the kernel reports it (shared/procfs.py).

A sandbox asked for is not a sandbox in effect: a kernel without user
namespaces, a container's seccomp profile or a wrong flag can each leave
Chromium's renderer processes (where job code runs) unconfined without any
error. So the renderer looks, per process type: uids, seccomp mode,
no_new_privs, user namespace; browser.py logs it once per start and reports
it in ``/stats``.
"""

import os
from collections import Counter

from shared import procfs


def process_facts(pid: int) -> dict | None:
    """Uid, seccomp mode, no_new_privs and namespaces of one process (None if it is gone)."""
    try:
        status = procfs.status(pid)
        argv = procfs.command_words(pid)
    except OSError:
        return None
    kind = next((a.split("=", 1)[1] for a in argv if a.startswith("--type=")), "browser")
    return {
        "pid": pid,
        "argv0": argv[0] if argv else "",
        "argv": argv,
        "type": kind,
        "uids": [int(u) for u in status.get("Uid", "").split()],
        "seccomp": int(status.get("Seccomp", "-1")),
        "no_new_privs": int(status.get("NoNewPrivs", "-1")),
        "namespaces": {ns: _namespace(pid, ns) for ns in ("user", "pid", "net")},
    }


def _namespace(pid: int, kind: str) -> str | None:
    try:
        return procfs.namespace(pid, kind)
    except OSError:
        return None  # not ours to look at (another user namespace's process)


def chromium_processes(chromium: str, root: int | None = None) -> list[dict]:
    """Every Chromium process started under ``root`` (default: this process)."""
    binary = os.path.realpath(chromium)
    names = {binary, chromium, os.path.basename(binary)}
    facts = [process_facts(pid) for pid in procfs.descendants(os.getpid() if root is None else root)]
    found = []
    for f in facts:
        if f and (f["argv0"] in names or os.path.basename(f["argv0"]) in names):
            found.append(f)
        elif f and "services.renderer.launcher" in f["argv"]:  # the launcher's fork: the asset server
            found.append({**f, "type": "asset-server"})
    return found


def summarize(processes: list[dict]) -> dict:
    """Per process type: how many, their uids, seccomp modes, no_new_privs, user namespaces."""
    own_user_ns = procfs.namespace("self", "user")
    by_type: dict[str, dict] = {}
    for kind in sorted({p["type"] for p in processes}):
        group = [p for p in processes if p["type"] == kind]
        user_ns = Counter(
            {None: "unknown", own_user_ns: "same"}.get(p["namespaces"]["user"], "separate") for p in group
        )
        by_type[kind] = {
            "count": len(group),
            "uid": sorted({p["uids"][0] for p in group if p["uids"]}),
            "seccomp": sorted({p["seccomp"] for p in group}),
            "no_new_privs": sorted({p["no_new_privs"] for p in group}),
            "user_namespace": dict(user_ns),
        }
    return by_type


def sandbox_verdict(by_type: dict, sandbox: bool) -> str | None:
    """Why the processes that run job code are not sandboxed as asked; None when they are."""
    renderers = by_type.get("renderer")
    if not sandbox or renderers is None:
        return None
    problems = []
    if 0 in renderers["uid"]:
        problems.append("a renderer process runs as uid 0")
    if renderers["seccomp"] != [2]:
        problems.append(f"renderer processes have seccomp mode {renderers['seccomp']}, not 2 (filter)")
    if renderers["no_new_privs"] != [1]:
        problems.append("renderer processes lack no_new_privs")
    return "; ".join(problems) or None
