"""A job delivered again after a broker restart is not run twice by the renderer that ran it,
one RabbitMQ dead-letters while it runs here is answered by that run, one it dead-letters while
it may run elsewhere is answered only once that run had time to answer, and every delivery is
answered, whatever goes wrong in handling it.

After a restart the ack of a job that was running is lost with the old channel,
so RabbitMQ delivers it again. The fault test (tests/faults) proves jobs finish
across a real restart; which renderer gets the redelivery there is up to
RabbitMQ, so these pin down the two cases on one renderer with a fake page and
fake messages.
"""

import asyncio
import time

from services.renderer.consumer import JobConsumer
from services.renderer.page import InterpreterCrashed
from shared.messages import RenderJob, RenderResult, utcnow
from shared.page_contract import failed_answer
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
        return failed_answer("ValueError", "the job's own error")  # any answer will do


class Broker:
    def __init__(self):
        self.results = []

    async def publish_event(self, event):
        if isinstance(event, RenderResult):  # not the "running" events
            self.results.append(event)


# The verdict on a dead letter waits for a run elsewhere: short here (about 0.6 s in all).
QUICK = {"interrupt_grace_s": 0.05, "page_allowance_s": 0.05, "export_timeout_s": 0.05, "publish_timeout_s": 0.05}
QUICK |= {"result_publish_attempts": 2}


def consumer(page, **settings):
    return JobConsumer(Settings(_env_file=None, **{**QUICK, **settings}), Broker(), page)


def job(timeout_s=5.0):
    return RenderJob(job_id="j1", code="x", width=700, height=500, timeout_s=timeout_s, submitted_at=utcnow())


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


async def test_a_dead_letter_of_a_job_not_running_here_is_answered_once_a_run_elsewhere_had_time_to():
    """Another renderer may still be running it, or publishing its result through a broker outage:
    its real result must land first (the first final result wins), so the verdict waits."""
    jobs = consumer(Page())
    late = job(timeout_s=0.2)
    wait = jobs.verdict_delay_s(late)
    assert 0.5 < wait < 2, wait
    dead = Message(late, 3, dead=True)
    started = time.monotonic()
    answering = asyncio.create_task(jobs.on_dead_letter(dead))
    await asyncio.sleep(wait * 0.8)
    assert jobs.broker.results == [] and dead.settled == []  # not yet: a real result may still come
    await asyncio.wait_for(answering, timeout=5)
    assert time.monotonic() - started >= wait
    assert [r.error.type for r in jobs.broker.results] == ["RendererCrashed"] and dead.settled == ["ack"]


def test_the_verdict_waits_past_the_jobs_limit_and_the_whole_publish_window():
    jobs = JobConsumer(Settings(_env_file=None), Broker(), Page())
    # 10 tries at 5 s for a confirm, 0.5..5 s apart (about 35 s), a 60 s job, 1 + 15 + 20 s for its page.
    assert jobs.verdict_delay_s(job(timeout_s=60)) > 60 + 1 + 15 + 20 + 10 * 5 + 30


async def test_a_crash_on_the_last_delivery_is_answered_by_the_renderer_that_saw_it():
    page = CrashingPage()
    jobs = consumer(page)
    first = Message(job(), 1)
    await jobs.on_job(first)
    assert first.settled == ["nack requeue=True"] and jobs.broker.results == []  # not yet the last try
    last = Message(job(), 3)  # PLOTFARM_DELIVERY_LIMIT is 3
    await jobs.on_job(last)
    assert last.settled == ["ack"]
    assert [r.error.type for r in jobs.broker.results] == ["RendererCrashed"]
    assert "crashed 3 times" in jobs.broker.results[0].error.message


class BuggyPage(Page):
    async def render(self, job):
        self.renders += 1
        raise KeyError("a bug of ours")


async def test_a_bug_while_handling_a_job_ends_in_a_failed_result_and_an_ack():
    jobs = consumer(BuggyPage())
    message = Message(job(), 1)
    await jobs.on_job(message)
    assert message.settled == ["ack"]
    assert [(r.status, r.error.type) for r in jobs.broker.results] == [("failed", "RendererError")]
    assert "KeyError" in jobs.broker.results[0].error.message


class UnencodablePage(Page):
    async def render(self, job):
        result = failed_answer("ValueError", "fine")
        return result.model_copy(update={"stdout": "\ud800"})  # what bounded_answer would have escaped


async def test_a_result_that_cannot_be_encoded_still_answers_the_job():
    jobs = consumer(UnencodablePage())
    message = Message(job(), 1)
    await jobs.on_job(message)
    assert message.settled == ["ack"]
    assert [r.error.type for r in jobs.broker.results] == ["RendererError"]
    assert jobs.broker.results[0].model_dump_json()


class UnpublishableBroker(Broker):
    async def publish_event(self, event):
        if isinstance(event, RenderResult):
            raise TypeError("not the broker's kind of failure")


async def test_a_result_that_cannot_be_sent_goes_to_the_dead_letters_not_nowhere():
    jobs = JobConsumer(Settings(_env_file=None, **QUICK), UnpublishableBroker(), Page())
    message = Message(job(), 1)
    await jobs.on_job(message)
    assert message.settled == ["nack requeue=False"]  # RabbitMQ dead-letters it
