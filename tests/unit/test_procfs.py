"""shared/procfs.py reads this machine's /proc right, on processes the test starts."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from shared import procfs


@pytest.fixture
def sleeper(tmp_path):
    """A child whose command name holds what would trip a naive /proc/PID/stat parser: spaces and ")"."""
    tricky = tmp_path / "sleep) 1 2 (x"
    tricky.symlink_to(shutil.which("sleep"))
    child = subprocess.Popen([str(tricky), "30"])
    try:
        deadline = time.monotonic() + 10
        while not procfs.command_line(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # Popen returns while the kernel still sets up the new program
        yield child
    finally:
        child.kill()
        child.wait()


def test_stat_fields_start_after_the_last_parenthesis(sleeper):
    assert procfs.parent(sleeper.pid) == os.getpid()
    assert procfs.stat(sleeper.pid)[0] in "RSD"  # running, sleeping, or in a disk wait


def test_the_tree_holds_children_and_theirs(sleeper):
    middle = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '30'])"])
    below: list[int] = []
    try:
        deadline = time.monotonic() + 10
        while not below and time.monotonic() < deadline:  # until its own child has started
            time.sleep(0.05)
            below = procfs.children(middle.pid)
        assert {sleeper.pid, middle.pid} <= set(procfs.children(os.getpid()))
        assert below and set(below) < set(procfs.descendants(os.getpid()))
    finally:
        for pid in below:
            os.kill(pid, signal.SIGKILL)
        middle.kill()
        middle.wait()


def test_command_line_status_and_memory(sleeper):
    assert procfs.command_line(sleeper.pid)[1:] == ["30"]
    assert procfs.command_words(os.getpid())[0] == procfs.command_line(os.getpid())[0]
    assert procfs.status(os.getpid())["Pid"] == str(os.getpid())
    assert procfs.rss_kb(os.getpid()) > 1000 and 0 < procfs.pss_kb(os.getpid()) <= procfs.rss_kb(os.getpid())
    assert procfs.cpu_seconds(os.getpid()) > 0
    assert procfs.namespace(sleeper.pid, "user") == procfs.namespace("self", "user")
    assert any(name.startswith("PATH=") for name in procfs.environment(os.getpid()))


def test_a_process_that_is_gone_raises_oserror():
    gone = subprocess.Popen(["true"])
    gone.wait()
    for read in (procfs.stat, procfs.status, procfs.command_line, procfs.pss_kb):
        with pytest.raises(OSError):
            read(gone.pid)
