"""The message models: what travels through RabbitMQ round-trips unchanged."""

from shared.messages import JobError, JobQueued, JobStarted, RenderJob, RenderResult, parse_event, utcnow


def make_job(**fields) -> RenderJob:
    return RenderJob(job_id="j1", code="x", width=700, height=450, timeout_s=10, submitted_at=utcnow(), **fields)


def test_events_round_trip_through_json():
    job = make_job()
    events = [
        JobQueued(job_id="j1", code="x", submitted_at=job.submitted_at),
        JobStarted(job_id="j1", renderer_id="r", attempt=1, started_at=utcnow()),
        RenderResult(job_id="j1", status="done", figures=["<svg/>"]),
    ]
    for event in events:
        assert parse_event(event.model_dump_json().encode()) == event


def test_failure_result_carries_the_job_and_a_total_time():
    job = make_job(tenant="t")
    result = RenderResult.failure(job, JobError(type="RendererCrashed", message="boom"), renderer_id="r")
    assert result.status == "failed" and result.code == "x" and result.tenant == "t"
    assert result.timings.total_ms >= 0
    assert result.figures == []
