"""client.py as a user runs it: submit, wait, write SVGs, print where to look."""

import subprocess
import sys
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
