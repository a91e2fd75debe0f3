"""A job delivered again after a broker restart is not run twice by the renderer that ran it,
and one RabbitMQ dead-letters while it runs here is answered by that run.

After a restart the ack of a job that was running is lost with the old channel,
so RabbitMQ delivers it again. The fault test (tests/faults) proves jobs finish
across a real restart; which renderer gets the redelivery there is up to
RabbitMQ, so these pin down the two cases on one renderer with a fake page and
fake messages.
"""

import asyncio

from services.renderer.consumer import JobConsumer
from services.renderer.page import InterpreterCrashed, failed
from shared.messages import RenderJob, RenderResult, utcnow
from shared.settings import Settings


class Message:
    """An incoming job message; ``ack_fails`` as on a channel that closed; ``dead`` as from the dead-letter queue."""

    def __init__(self, job: RenderJob, attempt: int, *, ack_fails=False, dead=False):
        self.body = job.model_dump_json().encode()
        self.headers = {"x-delivery-count": attempt - 1}
        if dead:
            self.headers["x-death"] = [{"reason": "delivery_limit"}]
        self.message_id = job.job_id
        self.ack_fails = ack_fails
        self.settled = []

    async def ack(self):
        if self.ack_fails:
            raise ConnectionError("channel closed")
        self.settled.append("ack")

    async def nack(self, requeue):
        self.settled.append(f"nack requeue={requeue}")


class Page:
    def __init__(self, hold_s=0.0):
        self.hold_s, self.renders = hold_s, 0

    async def render(self, job):
        self.renders += 1
        await asyncio.sleep(self.hold_s)
        return failed("ValueError", "the job's own error")  # any answer will do


class Broker:
    def __init__(self):
        self.results = []

    async def publish_event(self, event):
        if isinstance(event, RenderResult):  # not the "running" events
            self.results.append(event)


def consumer(page):
    return JobConsumer(Settings(_env_file=None), Broker(), page)


def job():
    return RenderJob(job_id="j1", code="x", width=700, height=500, timeout_s=5, submitted_at=utcnow())


async def test_a_redelivery_after_the_result_was_published_is_acked_unrun():
    page = Page()
    jobs = consumer(page)
    first = Message(job(), 1, ack_fails=True)  # the result went out, the ack did not
    await jobs.on_job(first)
    again = Message(job(), 2)
    await jobs.on_job(again)
    assert page.renders == 1
    assert again.settled == ["ack"]
    assert len(jobs.broker.results) == 1


async def test_a_redelivery_while_the_job_still_runs_here_waits_for_that_run():
    page = Page(hold_s=0.2)
    jobs = consumer(page)
    first = Message(job(), 1, ack_fails=True)
    callback = asyncio.create_task(jobs.on_job(first))
    await asyncio.sleep(0.05)
    callback.cancel()  # what aiormq does when the channel closes; the run goes on
    await asyncio.sleep(0.01)
    assert jobs.in_flight == 1
    again = Message(job(), 2)
    await asyncio.wait_for(jobs.on_job(again), timeout=2)
    assert page.renders == 1
    assert again.settled == ["ack"]
    assert len(jobs.broker.results) == 1 and jobs.in_flight == 0


class CrashingPage(Page):
    async def render(self, job):
        self.renders += 1
        await asyncio.sleep(self.hold_s)
        raise InterpreterCrashed("the page crashed")


async def test_a_dead_letter_of_a_job_running_here_waits_and_the_run_answers():
    """RabbitMQ 3.10 counts channel closes as deliveries: a job can be dead-lettered while it runs, unharmed."""
    page = Page(hold_s=0.2)
    jobs = consumer(page)
    running = asyncio.create_task(jobs.on_job(Message(job(), 3, ack_fails=True)))
    await asyncio.sleep(0.05)
    dead = Message(job(), 3, dead=True)
    await asyncio.wait_for(jobs.on_dead_letter(dead), timeout=2)
    await running
    assert dead.settled == ["ack"]
    assert [r.status for r in jobs.broker.results] == ["failed"]  # the job's own answer (its ValueError)
    assert jobs.broker.results[0].error.type == "ValueError"


async def test_a_dead_letter_of_a_run_here_that_crashes_is_answered_as_a_crash():
    page = CrashingPage(hold_s=0.1)
    jobs = consumer(page)
    running = asyncio.create_task(jobs.on_job(Message(job(), 3)))
    await asyncio.sleep(0.02)
    dead = Message(job(), 3, dead=True)
    await asyncio.wait_for(jobs.on_dead_letter(dead), timeout=2)
    await running
    assert [r.error.type for r in jobs.broker.results] == ["RendererCrashed"]
    assert dead.settled == ["ack"]


async def test_a_dead_letter_of_a_job_not_running_here_is_answered_at_once():
    jobs = consumer(Page())
    dead = Message(job(), 3, dead=True)
    await jobs.on_dead_letter(dead)
    assert [r.error.type for r in jobs.broker.results] == ["RendererCrashed"]
