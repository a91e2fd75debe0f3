"""A figure that takes too long to draw fails its own job; the job beside it never notices.

plotly.js draws on a page's thread, which nothing interrupts. Each job has a
renderer page to itself (services/renderer/pages.py), so the slow figure's
page is the only one that waits, and the only one replaced, when its drawing
passes PLOTFARM_EXPORT_TIMEOUT_S (20 s).
"""

import asyncio
import time

import pytest

from tests.sandbox.test_attacks import ORDINARY

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

# 200,000 text labels: about 6 MB of JSON (under the 8 MB per figure), and about half a minute
# of text measuring for plotly.js on a 2-core machine (20,000 take about 3 s).
SLOW_TO_DRAW = (
    "import plotly.graph_objects as go\nn = 200_000\n"
    "go.Figure(go.Scatter(x=list(range(n)), y=[i % 97 for i in range(n)], mode='markers+text',"
    " text=[f'label {i}' for i in range(n)])).show()\n"
)


async def test_a_slow_figure_fails_its_own_job_and_no_other(sandbox_api):
    slow = await sandbox_api.submit(SLOW_TO_DRAW, timeout_s=30)
    await asyncio.sleep(3)  # its code has run; its figure is being drawn
    started = time.monotonic()
    ordinary = [await sandbox_api.render(ORDINARY, timeout=60) for _ in range(3)]
    ordinary_s = time.monotonic() - started
    for job in ordinary:  # drawn on the other page meanwhile, first time, at their usual pace
        assert job["status"] == "done" and job["attempt"] == 1, job.get("error")
    assert ordinary_s < 15, f"three ordinary jobs took {ordinary_s:.1f} s beside the slow figure"
    result = await sandbox_api.result(slow["job_id"], timeout=120)
    assert result["status"] == "failed" and result["error"]["type"] == "TimeoutError", result.get("error")
    assert "drawing the job's figures took longer than 20 s" in result["error"]["message"]
    assert result["attempt"] == 1  # its own verdict, not a crash retried
    after = await sandbox_api.render(ORDINARY, timeout=60)  # and the renderer is whole again
    assert after["status"] == "done"
