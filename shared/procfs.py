"""What Linux says about its processes, read from /proc: the one place that parses it.

The renderer reports what Chromium's sandbox actually got from it
(services/renderer/sandbox_audit.py); ``make bench`` counts CPU time and the
profiling script memory with it; tests find and check the processes the
services started. psutil would do the same; this is the little we need,
with the standard library only.

A process can exit between two reads: the readers of one process raise
``OSError`` (``FileNotFoundError``, ``ProcessLookupError``...) when it is gone
or not ours to read, and leave it to the caller to skip it; the process tree
leaves out what vanished while it was read.
"""

import os

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def stat(pid: int | str) -> list[str]:
    """``/proc/PID/stat``'s fields after the command name: ``[state, ppid, pgrp, ...]``, fields 3 on of proc(5).

    The command name comes in parentheses and may hold spaces and parentheses
    of its own, so the fields start after its *last* closing parenthesis.
    """
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def parent(pid: int | str) -> int:
    return int(stat(pid)[1])


def cpu_seconds(pid: int | str) -> float:
    """User plus system CPU time the process has used so far (its threads included)."""
    fields = stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def status(pid: int | str) -> dict[str, str]:
    """``/proc/PID/status`` as ``{"Uid": "1000\\t1000\\t1000\\t1000", "Seccomp": "2", ...}``."""
    with open(f"/proc/{pid}/status") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def command_line(pid: int | str) -> list[str]:
    """The process's argv as it was started (a process that rewrote its title: see :func:`command_words`)."""
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        text = handle.read().decode(errors="replace")
    return text.removesuffix("\0").split("\0") if text else []  # none: a kernel thread, or a zombie


def command_words(pid: int | str) -> list[str]:
    """The command line's words. Chromium's child processes rewrite their title into one string of
    words separated by spaces: split at every space, argv reads the same for all of them."""
    return " ".join(command_line(pid)).split()


def environment(pid: int | str) -> list[str]:
    """The process's environment as it started: ``["NAME=value", ...]``."""
    with open(f"/proc/{pid}/environ", "rb") as handle:
        text = handle.read().decode(errors="replace")
    return text.removesuffix("\0").split("\0") if text else []


def namespace(pid: int | str, kind: str) -> str:
    """The process's namespace of ``kind`` (``user``, ``pid``, ``net``...), as ``"user:[4026531837]"``.

    Another user namespace's process is not ours to look at: ``PermissionError``.
    """
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def uid_map(pid: int | str) -> list[tuple[int, int, int]]:
    """The process's user namespace's uid mapping, as the reader's namespace sees it: (inside, outside, count)."""
    with open(f"/proc/{pid}/uid_map") as handle:
        return [tuple(int(number) for number in line.split()) for line in handle if line.strip()]


def rss_kb(pid: int | str) -> int:
    """Resident memory, in kB (0 for a kernel thread, which has none)."""
    resident = status(pid).get("VmRSS")
    return int(resident.split()[0]) if resident else 0


def pss_kb(pid: int | str) -> int:
    """Proportional set size, in kB: resident memory with each shared page divided among its sharers."""
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        return next((int(line.split()[1]) for line in handle if line.startswith("Pss:")), 0)


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(parent(entry), []).append(int(entry))
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue
    return children


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that still run, read from /proc now."""
    return _children_by_parent().get(pid, [])


def descendants(root: int) -> list[int]:
    """Every process started under ``root`` (children, theirs, ...), read from /proc now."""
    tree = _children_by_parent()
    found, todo = [], list(tree.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found
