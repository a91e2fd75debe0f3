"""A renderer restart restores the interpreter snapshot it stored, and never trusts a bad one.

Real renderers one after another on one snapshot directory
(``PLOTFARM_SNAPSHOT_STORE_DIR``, a temporary one): the first makes the
snapshot and stores it before taking a job; the next restores it and renders
the same figures (numpy, pandas, plotly.express: the shared libraries come back
too) to the same JSON. A stored snapshot whose body was damaged is not
offered, and one whose body is whole but does not restore (its index lies
about the function table) is replaced: both renderers make a new one, store
it, and render.
"""

import json
from pathlib import Path

import aiohttp
import pytest

from tests.support import Api, new_stack

pytestmark = pytest.mark.integration

CODE = """
import numpy as np
import pandas as pd
import plotly.express as px
rng = np.random.default_rng(7)
df = pd.DataFrame({"x": rng.normal(size=40), "y": rng.normal(size=40), "g": list("ab") * 20})
df["y"] = df.groupby("g")["y"].transform(lambda s: s.cumsum())
fig = px.scatter(df, x="x", y="y", color="g", trendline=None, title="stored snapshot")
fig.show()
"""


def events(log: Path, name: str) -> list[dict]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


async def render_json(gateway_url: str) -> dict:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        result = await Api(session, gateway_url).render(CODE, formats=["svg", "json"])
        assert result["status"] == "done", result.get("error")
        async with session.get(result["figures"][0]["files"]["json"]["url"]) as response:
            return json.loads(await response.read())


@pytest.fixture
def snapshots_stack(amqp_url, tmp_path):
    (tmp_path / "logs").mkdir()
    stack = new_stack(amqp_url, tmp_path / "logs", PLOTFARM_SNAPSHOT_STORE_DIR=tmp_path / "snapshots")
    try:
        gateway = stack.start_gateway()
        stack.wait_ready(gateway)
        stack.gateway_url = gateway.url
        yield stack, tmp_path / "snapshots"
    finally:
        stack.close()


def start_one(stack, name: str) -> tuple[dict, Path]:
    """Start a renderer and wait for it; its 'interpreter pool ready' record and its log."""
    renderer = stack.start_renderer(name)
    stack.wait_ready(renderer)
    (ready,) = events(renderer.log_path, "interpreter pool ready")
    return ready, renderer


async def test_a_restart_restores_the_stored_snapshot_and_replaces_a_bad_one(snapshots_stack):
    stack, snapshots = snapshots_stack

    first, renderer = start_one(stack, "stored-1")
    assert first["snapshot_source"] == "made"
    assert events(renderer.log_path, "interpreter snapshot stored"), renderer.tail()
    made_figure = await render_json(stack.gateway_url)
    renderer.stop()
    (stored,) = [p for p in snapshots.iterdir() if not p.name.startswith(".")]
    index = json.loads((stored / "snapshot.json").read_text())
    assert index["stored"]["size"] == (stored / "snapshot.bin").stat().st_size > 50e6

    second, renderer = start_one(stack, "stored-2")
    assert second["snapshot_source"] == "stored", renderer.tail()
    assert "stored_snapshot_problem" not in second
    assert not events(renderer.log_path, "interpreter snapshot stored")  # nothing new written
    assert await render_json(stack.gateway_url) == made_figure
    print(
        f"\nstored snapshot: cold start made {first['page_start_ms']} ms (with storing it: "
        f"{first['snapshot_stored_ms']} ms), restored {second['page_start_ms']} ms"
    )
    renderer.stop()

    # A damaged body: found by its checksum, never offered to the page.
    with (stored / "snapshot.bin").open("r+b") as body:
        body.seek(10_000_000)
        byte = body.read(1)
        body.seek(10_000_000)
        body.write(bytes([byte[0] ^ 0xFF]))
    third, renderer = start_one(stack, "stored-3")
    assert events(renderer.log_path, "stored snapshot is damaged; a new one will be made")
    assert third["snapshot_source"] == "made" and events(renderer.log_path, "interpreter snapshot stored")
    assert await render_json(stack.gateway_url) == made_figure
    renderer.stop()

    # A whole body whose index does not match it: the first restore fails, the page makes a new one.
    index = json.loads((stored / "snapshot.json").read_text())
    index["linkState"]["tableSize"] += 1
    (stored / "snapshot.json").write_text(json.dumps(index))
    fourth, renderer = start_one(stack, "stored-4")
    assert fourth["snapshot_source"] == "made"
    assert "does not match its snapshot" in fourth["stored_snapshot_problem"]
    assert events(renderer.log_path, "the stored snapshot did not restore; made a new one")
    assert events(renderer.log_path, "interpreter snapshot stored")
    assert await render_json(stack.gateway_url) == made_figure
    renewed = json.loads((stored / "snapshot.json").read_text())
    assert renewed["linkState"]["tableSize"] == index["linkState"]["tableSize"] - 1
