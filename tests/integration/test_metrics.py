"""/metrics on the real stack: a job done, one failed, one refused, then every service's numbers moved."""

import asyncio
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import RENDERERS

pytestmark = pytest.mark.integration

DONE = "import plotly.express as px; px.bar(x=['a', 'b'], y=[1, 2]).show()"
FAILS = "raise ValueError('metrics test')"


async def scrape(session, base: str) -> dict[str, list]:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict, name: str, **labels) -> float:
    """The sum of a metric's samples with these labels (0 when there are none)."""
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


async def renderers(session, stack) -> list[dict]:
    return [await scrape(session, stack.processes[name].url) for name in RENDERERS]


def summed(scrapes: list[dict], name: str, **labels) -> float:
    return sum(total(samples, name, **labels) for samples in scrapes)


async def test_every_service_reports_jobs_timings_queues_and_clients(api, stack):
    session = api.session
    gateway_before = await scrape(session, stack.gateway_url)
    renderers_before = await renderers(session, stack)

    done = await api.render(DONE)
    assert done["status"] == "done", done.get("error")
    failed = await api.render(FAILS)
    assert failed["status"] == "failed" and failed["error"]["type"] == "ValueError"
    async with session.post(f"{stack.gateway_url}/api/jobs", json={"code": 1}) as refused:
        assert refused.status == 400

    gateway = await scrape(session, stack.gateway_url)
    accepted = total(gateway, "plotfarm_jobs_accepted_total") - total(gateway_before, "plotfarm_jobs_accepted_total")
    assert accepted >= 2
    validation = {"name": "plotfarm_jobs_refused_total", "reason": "validation"}
    assert total(gateway, **validation) - total(gateway_before, **validation) >= 1
    for queue in ("jobs", "dead_letter"):
        assert len([s for s in gateway["plotfarm_queue_messages"] if s.labels["queue"] == queue]) == 1
    assert total(gateway, "plotfarm_queue_consumers", queue="jobs") >= len(RENDERERS)
    assert total(gateway, "plotfarm_events_follower_caught_up") == 1
    assert total(gateway, "plotfarm_events_follower_offset") >= 0
    assert 0 <= total(gateway, "plotfarm_events_follower_lag_seconds") < 60

    # A renderer counts a job after the result's confirm and the ack, which may be a moment
    # after the gateway saw the result in the stream.
    deadline = time.monotonic() + 20
    while True:
        after = await renderers(session, stack)

        def moved(name: str, after=after, **labels) -> float:
            return summed(after, name, **labels) - summed(renderers_before, name, **labels)

        finished_ok = moved("plotfarm_jobs_finished_total", status="done", error_type="none")
        finished_failed = moved("plotfarm_jobs_finished_total", status="failed", error_type="ValueError")
        if (finished_ok >= 1 and finished_failed >= 1) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert finished_ok >= 1 and finished_failed >= 1
    for histogram in ("queue_wait", "run", "svg", "total"):
        assert moved(f"plotfarm_job_{histogram}_seconds_count") >= 2, histogram
    assert moved("plotfarm_job_run_seconds_sum") > 0
    assert summed(after, "plotfarm_interpreter_restores_total") >= len(RENDERERS)
    assert summed(after, "plotfarm_interpreters_discarded_total") >= 2
    for samples in after:
        assert "plotfarm_interpreters_spare" in samples
        assert "plotfarm_interpreter_restore_recent_seconds" in samples

    async with session.ws_connect(f"{stack.viewer_url}/ws") as ws:
        assert (await ws.receive_json())["type"] == "hello"
        viewer = await scrape(session, stack.viewer_url)
        assert total(viewer, "plotfarm_websocket_clients") >= 1
    assert total(viewer, "plotfarm_events_follower_connected") == 1
    assert total(viewer, "plotfarm_events_follower_offset") >= total(gateway_before, "plotfarm_events_follower_offset")
    assert "plotfarm_events_follower_lag_seconds" in viewer
