"""Chromium's own sandbox is on under the test stack itself (root on CI, a normal user elsewhere).

Read straight from ``/proc`` of the Chromium processes the renderer services
started (their descendants), not from what the renderer says about itself:

- the processes that run job code (``--type=renderer``: the page and its
  Web Workers, where Pyodide runs) have a non-zero uid on the host, or live
  in a user namespace that maps nothing to host root; ``Seccomp: 2``
  (Chromium's seccomp-bpf filter) and ``NoNewPrivs: 1``;
- no Chromium process of ours runs as root, and none has the renderer's
  environment (the broker URL);
- as root: Chromium and the asset server run as the unprivileged system
  user, with no supplementary groups and no capabilities, and that user
  cannot read the asset server's memory or environment;
- the renderer's log and ``/stats`` say the same.
"""

import json
import os
import pwd
import shutil
import subprocess
import urllib.request

import pytest

from services.renderer.browser import CHROMIUM_USER
from shared import procfs
from tests.integration.conftest import RENDERERS
from tests.support import ROOT

pytestmark = pytest.mark.integration

AS_ROOT = os.geteuid() == 0


def host_user_namespace() -> str | None:
    """pid 1's user namespace; None where we may not look at it (not root)."""
    try:
        return procfs.namespace(1, "user")
    except OSError:
        return None


HOST_USER_NS = host_user_namespace()


def maps_host_root(pid: int) -> bool:
    """Does the process's user namespace map any uid to host uid 0? (read from the host's namespace)"""
    return any(outside <= 0 < outside + count for _inside, outside, count in procfs.uid_map(pid))


def chromium_of(renderer: str, stack) -> dict[str, list[int]]:
    """The Chromium processes under one renderer service, by type (browser, zygote, renderer, ...)."""
    by_type: dict[str, list[int]] = {}
    for pid in procfs.descendants(stack.processes[renderer].proc.pid):
        try:
            argv = procfs.command_words(pid)
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == "chromium":
            kind = next((a.split("=", 1)[1] for a in argv if a.startswith("--type=")), "browser")
            by_type.setdefault(kind, []).append(pid)
        elif "services.renderer.launcher" in argv:
            by_type.setdefault("asset-server", []).append(pid)
    return by_type


@pytest.fixture(scope="module")
def chromium(stack):
    return {name: chromium_of(name, stack) for name in RENDERERS}


async def test_a_job_runs(api):
    result = await api.render("import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1, 2])).show()")
    assert result["status"] == "done", result.get("error")


@pytest.mark.parametrize("renderer", RENDERERS)
def test_processes_that_run_job_code_are_sandboxed(renderer, chromium):
    pids = chromium[renderer].get("renderer", [])
    assert pids, f"no Chromium renderer processes under {renderer}: {chromium[renderer]}"
    for pid in pids:
        facts = procfs.status(pid)
        uids = [int(u) for u in facts["Uid"].split()]
        own_user_ns = procfs.namespace(pid, "user") != HOST_USER_NS
        assert all(uids) or (own_user_ns and not maps_host_root(pid)), f"pid {pid}: Uid {facts['Uid']}"
        assert facts["Seccomp"] == "2", f"pid {pid}: Seccomp {facts['Seccomp']} (2 = a seccomp-bpf filter)"
        assert facts["NoNewPrivs"] == "1", f"pid {pid}: NoNewPrivs {facts['NoNewPrivs']}"
        assert int(facts["CapEff"], 16) == 0, f"pid {pid}: CapEff {facts['CapEff']}"
        # Chromium's namespace sandbox: a user and a PID namespace of its own (and no network).
        assert own_user_ns
        assert procfs.namespace(pid, "pid") != procfs.namespace("self", "pid")
        assert procfs.namespace(pid, "net") != procfs.namespace(chromium[renderer]["browser"][0], "net")


@pytest.mark.parametrize("renderer", RENDERERS)
def test_no_chromium_process_runs_as_root_or_sees_the_renderers_environment(renderer, chromium):
    everything = [pid for pids in chromium[renderer].values() for pid in pids]
    assert chromium[renderer].get("browser"), chromium[renderer]
    for pid in everything:
        uids = [int(u) for u in procfs.status(pid)["Uid"].split()]
        assert all(uids), f"pid {pid} ({procfs.command_words(pid)[:2]}) runs as uid {uids}"
    browser = chromium[renderer]["browser"][0]
    environment = procfs.environment(browser)
    leaked = [v.split("=", 1)[0] for v in environment if v.startswith(("PLOTFARM_", "PYTHONPATH"))]
    assert not leaked, f"Chromium sees {leaked}"


@pytest.mark.skipif(not AS_ROOT, reason="the renderer drops to the system user only when it runs as root")
@pytest.mark.parametrize("renderer", RENDERERS)
def test_as_root_chromium_and_the_asset_server_run_as_the_unprivileged_system_user(renderer, chromium):
    user = pwd.getpwnam(CHROMIUM_USER)
    assert user.pw_uid != 0 and user.pw_gid != 0
    browser = chromium[renderer]["browser"][0]
    servers = chromium[renderer].get("asset-server", [])
    assert len(servers) == 1, chromium[renderer]
    for pid in (browser, servers[0]):
        facts = procfs.status(pid)
        assert facts["Uid"].split() == [str(user.pw_uid)] * 4, facts["Uid"]
        assert facts["Gid"].split() == [str(user.pw_gid)] * 4, facts["Gid"]
        assert facts["Groups"].strip() == "", f"supplementary groups: {facts['Groups']}"
        assert int(facts["CapEff"], 16) == 0 and int(facts["CapPrm"], 16) == 0
        assert facts["NoNewPrivs"] == "1"
    profile = next(a.split("=", 1)[1] for a in procfs.command_words(browser) if a.startswith("--user-data-dir="))
    assert os.stat(profile).st_uid == user.pw_uid


@pytest.mark.skipif(not AS_ROOT or not shutil.which("setpriv"), reason="needs root and setpriv")
@pytest.mark.parametrize("renderer", RENDERERS)
def test_chromiums_user_cannot_read_the_asset_servers_memory(renderer, chromium):
    """The asset server is a fork of the launcher (which had the renderer's environment): not dumpable."""
    user = pwd.getpwnam(CHROMIUM_USER)
    server = chromium[renderer]["asset-server"][0]
    as_chromium = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]
    for what in ("environ", "mem", "maps"):
        attempt = subprocess.run([*as_chromium, "cat", f"/proc/{server}/{what}"], capture_output=True)
        assert attempt.returncode != 0 and not attempt.stdout, f"{what} is readable by {CHROMIUM_USER}"
    # ... while Chromium's own processes are (same uid, dumpable): the check above means something.
    browser = chromium[renderer]["browser"][0]
    assert subprocess.run([*as_chromium, "cat", f"/proc/{browser}/environ"], capture_output=True).returncode == 0


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_renderer_logs_and_reports_what_chromium_got(renderer, stack, chromium):
    process = stack.processes[renderer]
    logged = [json.loads(line) for line in process.log_path.read_text().splitlines() if '"chromium sandbox"' in line]
    assert logged, process.tail()
    assert logged[0]["sandbox"] == "on" and logged[0]["seccomp"] == "2" and logged[0]["no_new_privs"] == "1"
    assert "0" not in logged[0]["uid"].split(",")
    with urllib.request.urlopen(f"{process.url}/stats", timeout=10) as response:
        report = json.load(response)["chromium"]
    assert report["sandbox"] == "on" and report["problem"] is None, report
    assert report["renderer_processes"]["seccomp"] == [2]
    assert report["renderer_processes"]["no_new_privs"] == [1]
    assert 0 not in report["renderer_processes"]["uid"]
    if AS_ROOT:
        assert report["runs_as"].startswith(CHROMIUM_USER)


@pytest.mark.skipif(not AS_ROOT, reason="only a renderer running as root drops Chromium's user")
def test_as_root_a_checkout_the_unprivileged_user_cannot_enter_still_serves(stack, tmp_path):
    """A checkout under a directory only root may enter (``/root`` is 0700): the launcher binds the
    served directories into its own mount namespace, so the dropped asset server still reads them."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    web, build = locked / "web", locked / "build"
    web.symlink_to(ROOT / "web")
    build.symlink_to(ROOT / "build")
    user = pwd.getpwnam(CHROMIUM_USER)
    entering = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--", "ls", str(web)],
        capture_output=True,
    )
    assert entering.returncode != 0  # the premise: that user cannot get there by itself
    renderer = stack.start_renderer(
        "renderer-locked-checkout", PLOTFARM_WEB_DIR=str(web), PLOTFARM_WHEELS_DIR=str(build / "wheels")
    )
    try:
        stack.wait_ready(renderer, timeout=120)  # the page loaded Pyodide, plotly.js and the snapshot from it
        with urllib.request.urlopen(f"{renderer.url}/stats", timeout=10) as response:
            report = json.load(response)["chromium"]
        assert report["sandbox"] == "on" and report["problem"] is None, report
        mountpoint = assets_mountpoint("renderer-locked-checkout", stack)
        assert os.path.isdir(mountpoint), mountpoint
    finally:
        assert renderer.stop() == 0, renderer.tail()
        stack.processes.pop("renderer-locked-checkout", None)
    # Its own mount point is gone with it (other renderers on the machine may have theirs meanwhile).
    assert not os.path.exists(mountpoint), mountpoint


def assets_mountpoint(renderer: str, stack) -> str:
    """The directory the renderer's launcher serves the assets from (its ``--assets-at``)."""
    for pid in procfs.descendants(stack.processes[renderer].proc.pid):
        try:
            argv = procfs.command_words(pid)
        except OSError:
            continue
        if "services.renderer.launcher" in argv and "--assets-at" in argv:
            return argv[argv.index("--assets-at") + 1]
    raise AssertionError(f"no asset server launcher under {renderer}")
