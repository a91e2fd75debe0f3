"""The status rules shared by gateway and viewer: forward only, first result wins, bounded memory, fair to tenants."""

import random
from datetime import timedelta

import pytest

from shared.jobs import JobIndex, figure_size
from shared.messages import JobQueued, JobStarted, RenderResult, utcnow


def queued(job_id="j", code="x"):
    return JobQueued(job_id=job_id, code=code, submitted_at=utcnow())


def started(job_id="j", attempt=1):
    return JobStarted(job_id=job_id, renderer_id="r", attempt=attempt, started_at=utcnow())


def result(job_id="j", status="done", svg="<svg/>"):
    return RenderResult(job_id=job_id, status=status, figures=[svg] if status == "done" else [])


def test_status_moves_forward_even_when_events_arrive_out_of_order():
    index = JobIndex(max_bytes=10**6)
    assert index.apply(started())
    assert index.get("j").status == "running"
    assert index.apply(queued())  # late, but it brings the code
    assert index.get("j").status == "running"
    assert index.apply(result())
    assert index.get("j").status == "done"
    assert not index.apply(started(attempt=2))
    assert index.get("j").status == "done"


def test_first_result_wins_and_duplicates_are_counted():
    index = JobIndex(max_bytes=10**6)
    index.apply(queued())
    assert index.apply(result(status="done", svg="<svg>first</svg>"))
    assert not index.apply(result(status="failed"))
    record = index.get("j")
    assert record.status == "done" and [figure.svg for figure in record.result.figures] == ["<svg>first</svg>"]
    assert index.duplicates == 1


def test_oldest_finished_jobs_are_evicted_past_the_byte_limit():
    index = JobIndex(max_bytes=3000)
    index.apply(queued("running-job"))
    for n in range(5):
        index.apply(queued(f"j{n}"))
        index.apply(result(f"j{n}", svg="<svg>" + "x" * 1000 + "</svg>"))
    assert index.get("running-job") is not None  # unfinished jobs are never forgotten
    assert index.get("j0") is None and index.get("j4") is not None
    assert index.kept_bytes <= 3000


async def test_wait_final_returns_when_the_result_arrives():
    import asyncio

    index = JobIndex(max_bytes=10**6)
    index.apply(queued())
    waiter = asyncio.create_task(index.wait_final("j", timeout=5))
    await asyncio.sleep(0.05)
    index.apply(result())
    record = await asyncio.wait_for(waiter, 1)
    assert record.status == "done"


async def test_wait_final_gives_up_after_its_timeout():
    index = JobIndex(max_bytes=10**6)
    index.apply(queued())
    record = await index.wait_final("j", timeout=0.05)
    assert record.status == "queued"
    assert await index.wait_final("unknown", timeout=0.05) is None
    assert timedelta(0) <= utcnow() - record.submitted_at


def tenant_result(job_id, tenant, svg_bytes):
    return RenderResult(job_id=job_id, status="done", tenant=tenant, figures=["x" * svg_bytes])


def finish(index, job_id, tenant, svg_bytes=1000):
    index.apply(JobQueued(job_id=job_id, code="", submitted_at=utcnow(), tenant=tenant))
    index.apply(tenant_result(job_id, tenant, svg_bytes))


def test_a_flooding_tenant_evicts_only_its_own_results():
    index = JobIndex(max_bytes=20_000, tenant_share=0.25)
    for n in range(3):
        finish(index, f"a{n}", "a")
        finish(index, f"b{n}", "b")
    for n in range(100):  # far more than the whole cache, after the others' results
        finish(index, f"flood{n}", "flood")
    assert all(index.get(f"{tenant}{n}") for tenant in "ab" for n in range(3))
    assert index.get("flood0") is None and index.get("flood99") is not None
    assert index.kept_bytes <= 20_000
    kept_flood = sum(index.get(f"flood{n}") is not None for n in range(100))
    assert kept_flood == 14  # the whole cache less the others' 6 results: it may use what they leave


@pytest.mark.parametrize("tenant", [None, "solo"])
def test_a_lone_tenant_uses_the_whole_cache_and_gives_way_when_others_come(tenant):
    index = JobIndex(max_bytes=20_000, tenant_share=0.25)
    for n in range(50):
        finish(index, f"solo{n}", tenant)
    assert index.kept_bytes == 20_000  # all of it, not a quarter
    assert [n for n in range(50) if index.get(f"solo{n}")] == list(range(30, 50))
    for n in range(4):
        finish(index, f"other{n}", "other")
    for n in range(50, 100):
        finish(index, f"solo{n}", tenant)
    assert all(index.get(f"other{n}") for n in range(4))  # within its share: kept
    assert index.get("solo99") is not None and index.kept_bytes == 20_000


def test_tenants_over_their_share_lose_results_until_they_are_even():
    index = JobIndex(max_bytes=20_000, tenant_share=0.25)
    for n in range(100):
        finish(index, f"a{n}", "a")
        finish(index, f"b{n}", "b", svg_bytes=500)
    bytes_of = {tenant: sum(r.size for r in index.records.values() if r.tenant == tenant) for tenant in "ab"}
    assert abs(bytes_of["a"] - bytes_of["b"]) <= 1000 and sum(bytes_of.values()) <= 20_000


def test_sizes_stay_exact_whatever_the_order_of_events():
    rng = random.Random(7)
    index = JobIndex(max_bytes=30_000, tenant_share=0.25)
    events = []
    for n in range(300):
        tenant = rng.choice(["a", "b", "c", None])
        code = "x" * rng.randrange(0, 300)
        job_queued = JobQueued(job_id=f"j{n}", code=code, submitted_at=utcnow(), tenant=tenant)
        figures = [{"svg": "s" * rng.randrange(0, 2000), "spec": {"data": [{"y": [1] * rng.randrange(0, 50)}]}}]
        # Some results come before their queued event and do not say when the job was submitted.
        job_result = RenderResult(job_id=f"j{n}", status="done", tenant=tenant, code=code, figures=figures, stdout="o")
        pair = [job_queued, job_result]
        rng.shuffle(pair)
        events += pair + ([job_result] if rng.random() < 0.1 else [])  # and some twice
    for event in events:
        index.apply(event)
        assert index.kept_bytes == sum(record.size for record in index.records.values())
        record = index.get(event.job_id)
        if record is not None and record.final:  # what it holds: its figures, output and code
            figures = sum(figure_size(figure) for figure in record.result.figures)
            assert record.size == figures + len(record.result.stdout) + len(record.code), record.job_id
        for tenant, results in index.tenants.items():
            assert results.bytes == sum(index.get(job_id).size for job_id in results.jobs)
            assert all(index.get(job_id).tenant == tenant for job_id in results.jobs)
        assert index.kept_bytes <= 30_000
