"""The status rules shared by gateway and viewer: forward only, first result wins, bounded memory."""

from datetime import timedelta

from shared.jobs import JobIndex
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
