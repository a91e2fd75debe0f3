"""client.py as a user runs it: submit, wait, write SVGs, print where to look; and batches."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SEED = (
    "import plotly.graph_objects as go; fig = go.Figure(data=go.Scatter(x=[1,2,3], y=[4,5,6])); "
    "fig.update_layout(title='Example')"
)


def client(stack, *args, stdin=None, timeout=120):
    return subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "--gateway", stack.gateway_url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_seed_command_writes_svg_and_prints_links(stack, tmp_path):
    run = client(stack, "--code", SEED, "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.split()[1]
    svg = (tmp_path / f"{job_id}.svg").read_text()
    assert svg.startswith("<svg") and "Example" in svg
    assert f"?job={job_id}" in run.stdout
    assert "total" in run.stdout and "ms" in run.stdout


def test_file_and_stdin_and_two_figures(stack, tmp_path):
    run = client(stack, "--file", str(ROOT / "examples" / "two_figures.py"), "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.split()[1]
    assert "First figure" in (tmp_path / f"{job_id}.svg").read_text()
    assert "Second figure" in (tmp_path / f"{job_id}-2.svg").read_text()

    run = client(stack, "-", "--out", str(tmp_path), stdin=(ROOT / "examples" / "bar.py").read_text())
    assert run.returncode == 0, run.stderr
    assert "Fruit sold" in (tmp_path / f"{run.stdout.split()[1]}.svg").read_text()


def test_failed_job_prints_traceback_and_exits_nonzero(stack, tmp_path):
    run = client(stack, "--code", "import plotly\nraise ValueError('bad data')", "--out", str(tmp_path))
    assert run.returncode == 1
    assert "Traceback" in run.stderr and "ValueError: bad data" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_warnings_are_printed(stack, tmp_path):
    code = "import plotly.graph_objects as go\ngo.Figure(go.Scattergl(y=[1, 3, 2])).show()"
    run = client(stack, "--code", code, "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "warning: figure 1: scattergl is drawn with WebGL" in run.stderr


def test_no_wait_prints_only_the_job_id(stack):
    run = client(stack, "--no-wait", "--code", SEED)
    assert run.returncode == 0
    assert len(run.stdout.strip()) == 32


def test_refused_request_exits_2(stack):
    run = client(stack, "--code", "   ")
    assert run.returncode == 2
    assert "code is empty" in run.stderr


def test_unreachable_gateway_exits_3(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "--gateway", "http://127.0.0.1:1", "--code", SEED],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 3
    assert "cannot reach the gateway" in run.stderr


def test_api_key_is_sent_when_the_gateway_requires_one(stack, tmp_path):
    keyed = stack.start_gateway("gateway-with-keys", PLOTFARM_API_KEYS="cli=cli-key")
    try:
        stack.wait_ready(keyed)
        base = [sys.executable, str(ROOT / "client.py"), "--gateway", keyed.url, "--out", str(tmp_path), "--code", SEED]
        refused = subprocess.run(base, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert refused.returncode == 2 and "API key" in refused.stderr
        accepted = subprocess.run(
            [*base, "--api-key", "cli-key"], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert accepted.returncode == 0, accepted.stderr
        assert "Example" in (tmp_path / f"{accepted.stdout.split()[1]}.svg").read_text()
    finally:
        keyed.stop()


# --- batches ------------------------------------------------------------------------------

SUMMARY = re.compile(r"done=(\d+) failed=(\d+) seconds=[\d.]+ jobs/s=[\d.]+")


def test_batch_of_a_directory_writes_files_named_after_the_inputs(stack, tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "b1.py").write_text((ROOT / "examples" / "bar.py").read_text())
    (jobs / "b2.py").write_text((ROOT / "examples" / "two_figures.py").read_text())
    (jobs / "b3.py").write_text("import plotly\nraise ValueError('bad batch input')\n")
    (jobs / "notes.txt").write_text("not a job")
    out = tmp_path / "out"

    run = client(stack, str(jobs), "--out", str(out), "--concurrency", "3")

    assert run.returncode == 1, run.stderr  # one job failed
    assert sorted(p.name for p in out.iterdir()) == ["b1.svg", "b2-2.svg", "b2.svg"]
    assert "Fruit sold" in (out / "b1.svg").read_text()
    assert "First figure" in (out / "b2.svg").read_text()
    assert "Second figure" in (out / "b2-2.svg").read_text()
    assert SUMMARY.search(run.stdout).groups() == ("2", "1"), run.stdout
    assert "b3.py: failed" in run.stderr and "ValueError: bad batch input" in run.stderr
    assert "Traceback" in run.stderr


def test_batch_from_files_and_globs_all_done_exits_0(stack, tmp_path):
    out = tmp_path / "out"
    run = client(
        stack,
        "--file",
        str(ROOT / "examples" / "scatter.py"),
        "--file",
        str(ROOT / "examples" / "pie.py"),
        str(ROOT / "examples" / "b*.py"),  # quoted glob: expanded by the client
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["bar.svg", "pie.svg", "scatter.svg"]
    assert SUMMARY.search(run.stdout).groups() == ("3", "0")


def test_batch_asks_for_the_formats_and_writes_each(stack, tmp_path):
    out = tmp_path / "out"
    run = client(
        stack,
        str(ROOT / "examples" / "bar.py"),
        "--format",
        "svg",
        "--format",
        "png",
        "--scale",
        "2",
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["bar.png", "bar.svg"]
    assert (out / "bar.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (out / "bar.svg").read_text().startswith("<svg")


def test_missing_batch_input_is_refused(stack, tmp_path):
    run = client(stack, str(tmp_path / "nope.py"), str(tmp_path / "*.py"))
    assert run.returncode == 2
    assert "no such file" in run.stderr


def test_batch_larger_than_the_burst_finishes_at_the_rate_limit(stack, tmp_path):
    limited = stack.start_gateway(
        "gateway-rate-limited", PLOTFARM_RATE_LIMIT_PER_MINUTE="60", PLOTFARM_RATE_LIMIT_BURST="2"
    )
    try:
        stack.wait_ready(limited)
        jobs = tmp_path / "jobs"
        jobs.mkdir()
        for n in range(8):
            (jobs / f"j{n}.py").write_text(SEED.replace("Example", f"Batch {n}"))
        out = tmp_path / "out"
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, str(ROOT / "client.py"), "--gateway", limited.url, str(jobs), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=ROOT,
        )
        elapsed = time.monotonic() - started
        assert run.returncode == 0, run.stdout + run.stderr
        assert SUMMARY.search(run.stdout).groups() == ("8", "0")
        assert sorted(p.name for p in out.iterdir()) == [f"j{n}.svg" for n in range(8)]
        assert "Batch 7" in (out / "j7.svg").read_text()
        assert "gateway busy (429" in run.stderr  # it did hit the limit, and waited it out
        assert elapsed >= 5  # 2 at once, then one a second
    finally:
        limited.stop()
