"""The renderer's consume loop: one job in, one confirmed result out, then ack.

The order is what makes delivery at-least-once:

1. take a job (manual ack, prefetch = number of interpreters);
2. announce it (``running`` event, best effort);
3. run it in a warm interpreter under its time limit;
4. publish the result persistently and wait for the broker's confirm;
5. only then ack the job.

A renderer that dies anywhere before 5 leaves the job unacked, so RabbitMQ
hands it to another renderer. If the interpreter's page or browser dies under
a job, the job is handed back (nack + requeue), except on its last allowed
delivery, where this renderer answers it as a crash itself; a job whose
renderer died on that delivery is dead-lettered by RabbitMQ, and
:meth:`JobConsumer.on_dead_letter` answers it once any renderer still running
it has had time to publish its real result.

Every delivery is answered: whatever goes wrong in handling a job (a result
that cannot be encoded, a bug of ours) ends in a failed result with the error
type ``RendererError``, published and acked like any other.

A broker restart closes the channel a job came on, and aiormq cancels the
callbacks of a closed channel. So a job runs in a task of the consumer's own:
it finishes, its result is published once the connection is back (retried,
bounded), and only the ack is lost, so RabbitMQ delivers the job again. A
redelivery of a job this renderer is still running waits for that run, and
one whose result this renderer already published is acked without running it
again.

The service around it (services/renderer/service.py) starts and drains it.
"""

import asyncio
import contextlib
from collections import OrderedDict

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from services.renderer.page import InterpreterCrashed, input_transfer_s
from services.renderer.pages import PagePool
from services.renderer.sanitize import UnsafeSvg, sanitize_svg
from shared.broker import Broker, BrokerUnavailable, Subscription
from shared.messages import JobError, JobStarted, RenderJob, RenderResult, Timings, ms_between, utcnow
from shared.metrics import RendererMetrics
from shared.page_contract import PageResult, cut, encodable
from shared.retry import Backoff, RetriesExhausted, retry
from shared.settings import Settings
from shared.vocabulary import ErrorType

log = structlog.get_logger(__name__)

# Pauses between attempts to publish a result while RabbitMQ is away (a restart takes seconds).
RESULT_PUBLISH_BACKOFF = Backoff(first_s=0.5, max_s=5.0)
# Job ids whose results this renderer published, remembered to ack their redeliveries unrun.
PUBLISHED_REMEMBERED = 10_000
# Dead letters a renderer holds at once: each may wait a minute or two before it is answered.
DEAD_LETTER_PREFETCH = 100


class Admission:
    """Jobs share the page, except suspects, which run alone.

    A redelivered job is a suspect: its last renderer may have died under it.
    When a page crashes, every job on it is handed back, innocent or not, and
    each delivery counts towards the dead-letter limit. Running suspects alone
    means a job that keeps crashing pages takes no bystander down with it a
    second time, so only the guilty job reaches the limit.
    """

    def __init__(self):
        self._changed = asyncio.Condition()
        self._sharing = 0
        self._alone = False
        self._waiting_alone = 0

    @contextlib.asynccontextmanager
    async def enter(self, *, alone: bool):
        async with self._changed:
            if alone:
                self._waiting_alone += 1
                try:
                    await self._changed.wait_for(lambda: not self._alone and self._sharing == 0)
                finally:  # also when cancelled: a ghost suspect would keep every shared job out
                    self._waiting_alone -= 1
                    self._changed.notify_all()
                self._alone = True
            else:
                await self._changed.wait_for(lambda: not self._alone and self._waiting_alone == 0)
                self._sharing += 1
        try:
            yield
        finally:
            async with self._changed:
                if alone:
                    self._alone = False
                else:
                    self._sharing -= 1
                self._changed.notify_all()


def delivery_attempt(message: AbstractIncomingMessage) -> int:
    """1 for the first delivery; quorum queues count earlier returns in x-delivery-count."""
    return int((message.headers or {}).get("x-delivery-count", 0)) + 1


def sanitized(output: PageResult) -> PageResult:
    """The page's answer with every SVG sanitised (sanitize.py), or the job failed when one cannot be."""
    if output.error:
        return output
    try:
        figures = [
            figure.model_copy(update={"svg": sanitize_svg(figure.svg)}) if figure.svg is not None else figure
            for figure in output.figures
        ]
    except UnsafeSvg as exc:
        error = JobError(type=ErrorType.UNSAFE_SVG, message=str(exc))
        return output.model_copy(update={"figures": [], "error": error})
    return output.model_copy(update={"figures": figures})


# Characters of stdout and stderr a result failed for its size still carries.
FAILED_RESULT_TEXT_CHARS = 4000


def build_result(job: RenderJob, output: PageResult, settings: Settings, *, started, attempt: int) -> RenderResult:
    """The final result of a job from the page's (checked) answer; too big a result fails the job instead."""
    finished = utcnow()
    error = output.error
    result = RenderResult(
        job_id=job.job_id,
        status="failed" if error else "done",
        code=job.code,
        figures=[] if error else output.figures,
        packages=output.packages,
        warnings=output.warnings,
        stdout=output.stdout,
        stderr=output.stderr,
        error=error,
        timings=Timings(
            queued_ms=ms_between(job.submitted_at, started),
            wait_ms=round(output.timings.wait_ms, 1),
            load_ms=round(output.timings.load_ms, 1),
            run_ms=round(output.timings.run_ms, 1),
            svg_ms=round(output.timings.svg_ms, 1),
            total_ms=ms_between(job.submitted_at, finished),
        ),
        renderer_id=settings.renderer_id,
        attempt=attempt,
        submitted_at=job.submitted_at,
        finished_at=finished,
        tenant=job.tenant,
    )
    size = len(result.model_dump_json())
    if size > settings.max_result_bytes:
        result = RenderResult.failure(
            job,
            JobError(
                type=ErrorType.OUTPUT_LIMIT_EXCEEDED,
                message=f"the result is {size} bytes; the limit is {settings.max_result_bytes}",
            ),
            renderer_id=settings.renderer_id,
            attempt=attempt,
            timings=result.timings,
            # What the job printed is already within its limits (page_contract.bounded_answer); shorter here.
            stdout=cut(output.stdout, FAILED_RESULT_TEXT_CHARS, "output"),
            stderr=cut(output.stderr, FAILED_RESULT_TEXT_CHARS, "output"),
        )
    return result


def internal_failure(job: RenderJob, settings: Settings, exc: BaseException, *, attempt: int) -> RenderResult:
    """The failed result for a job we could not handle (a bug of ours): always encodable."""
    message = encodable(cut(f"{type(exc).__name__}: {exc}", 2000, "message"))
    return RenderResult.failure(
        job,
        JobError(type=ErrorType.RENDERER_ERROR, message=f"the renderer could not handle this job: {message}"),
        renderer_id=settings.renderer_id,
        attempt=attempt,
    )


class JobConsumer:
    """Takes jobs from the jobs queue (and dead letters), runs them on the page, publishes, acks."""

    def __init__(self, settings: Settings, broker: Broker, pages: PagePool, metrics: RendererMetrics | None = None):
        self.settings = settings
        self.broker = broker
        self.pages = pages
        self.metrics = metrics or RendererMetrics()
        self.in_flight = 0
        self.completed = 0
        self.idle = asyncio.Event()  # set whenever no job is in flight
        self.idle.set()
        self.admission = Admission()
        self.subscriptions: list[Subscription] = []
        self.running: dict[str, asyncio.Task] = {}  # job id -> its run, outliving the channel it came on
        self.published: OrderedDict[str, None] = OrderedDict()  # the last PUBLISHED_REMEMBERED results

    async def start(self) -> None:
        prefetch = self.settings.renderer_concurrency
        for queue, callback, limit in (
            ("jobs_queue", self.on_job, prefetch),
            ("dead_letter_queue", self.on_dead_letter, DEAD_LETTER_PREFETCH),
        ):
            self.subscriptions.append(await self.broker.consume(queue, callback, prefetch=limit))
        log.info("consuming jobs", queue=self.subscriptions[0].queue.name, prefetch=prefetch)

    async def on_job(self, message: AbstractIncomingMessage) -> None:
        try:
            job = RenderJob.model_validate_json(message.body)
        except ValidationError as exc:
            log.error("malformed job dead-lettered", message_id=message.message_id, error=str(exc)[:300])
            await message.reject(requeue=False)
            return
        attempt = delivery_attempt(message)
        with structlog.contextvars.bound_contextvars(job_id=job.job_id, attempt=attempt):
            if earlier := self.running.get(job.job_id):
                log.info("job delivered again while its run here goes on; waiting for that run")
                await asyncio.shield(earlier)
            if job.job_id in self.published:
                log.info("job delivered again after its result was published; acking it unrun")
                await self._settle(message, ack=True)
                return
            run = asyncio.create_task(self._run(job, message, attempt))
            self.running[job.job_id] = run
            run.add_done_callback(lambda done: self._forget_run(job.job_id, done))
            await asyncio.shield(run)  # cancelled when the channel closes; the run is not

    def _forget_run(self, job_id: str, run: asyncio.Task) -> None:
        if self.running.get(job_id) is run:
            del self.running[job_id]

    async def _run(self, job: RenderJob, message: AbstractIncomingMessage, attempt: int) -> None:
        self.in_flight += 1
        self.idle.clear()
        try:
            await self._handle(job, message, attempt)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    async def _handle(self, job: RenderJob, message: AbstractIncomingMessage, attempt: int) -> None:
        started = utcnow()
        log.info("job started", queued_ms=ms_between(job.submitted_at, started))
        announced = JobStarted(
            job_id=job.job_id, renderer_id=self.settings.renderer_id, attempt=attempt, started_at=started
        )
        if job.figures is None:
            with contextlib.suppress(BrokerUnavailable):
                await self.broker.publish_event(announced)
            await self._render_and_publish(job, message, attempt, started)
            return
        # A figure job takes tens of milliseconds: its `running` event is confirmed while the figures
        # are drawn rather than before (the fast path), and always before its result is published.
        announcing = asyncio.create_task(self._announce(announced))
        try:
            await self._render_and_publish(job, message, attempt, started, before_result=announcing)
        finally:
            if not announcing.done():
                announcing.cancel()

    async def _announce(self, event: JobStarted) -> None:
        with contextlib.suppress(BrokerUnavailable):
            await self.broker.publish_event(event)

    async def _render_and_publish(
        self,
        job: RenderJob,
        message: AbstractIncomingMessage,
        attempt: int,
        started,
        *,
        before_result: asyncio.Task | None = None,
    ) -> None:
        try:
            async with self.admission.enter(alone=attempt > 1):
                output = await self.pages.render(job)
            output = await asyncio.to_thread(sanitized, output)
            result = build_result(job, output, self.settings, started=started, attempt=attempt)
            result.model_dump_json()  # encodable, or the failure below says why
        except InterpreterCrashed as exc:
            if attempt < self.settings.delivery_limit:
                log.warning("interpreter crashed under the job; handing it back", error=str(exc))
                self.metrics.handed_back("interpreter_crashed")
                await self._settle(message, requeue=True)
                return
            # Its last delivery: handed back, RabbitMQ would dead-letter it; say so now instead.
            log.error("interpreter crashed under the job on its last delivery; it fails", error=str(exc))
            result = self.crash_verdict(job, "crashed on every delivery")
        except Exception as exc:  # a bug of ours: the job still gets its answer
            log.exception("could not handle the job; it fails with RendererError")
            result = internal_failure(job, self.settings, exc, attempt=attempt)
        if before_result is not None:
            await before_result
        await self._publish_and_ack(result, message)

    def crash_verdict(self, job: RenderJob, how: str) -> RenderResult:
        error = JobError(
            type=ErrorType.RENDERER_CRASHED,
            message=(
                f"the renderer crashed {self.settings.delivery_limit} times while running this job ({how}); "
                "it will not be retried"
            ),
        )
        return RenderResult.failure(
            job, error, renderer_id=self.settings.renderer_id, attempt=self.settings.delivery_limit
        )

    async def _publish_and_ack(self, result: RenderResult, message: AbstractIncomingMessage, *, ran=True) -> None:
        """Publish the result (riding out a broker restart), then ack; hand the job back if it cannot be published.

        ``ran``: the result came from the page (a dead letter's did not, so it has no timings to count).
        """
        try:
            await retry(
                lambda: self.broker.publish_event(result),
                what="publish the job's result",
                attempts=self.settings.result_publish_attempts,
                backoff=RESULT_PUBLISH_BACKOFF,
                retry_on=(BrokerUnavailable,),
            )
        except RetriesExhausted as exc:
            log.warning("result not confirmed; handing the job back", error=str(exc))
            self.metrics.handed_back("result_unconfirmed")
            await self._settle(message, requeue=True)
            return
        except Exception:  # the result could not even be sent: not the broker's doing
            log.exception("could not publish the job's result; rejecting it to the dead letters")
            # RabbitMQ dead-letters it, and a renderer answers the dead letter (on_dead_letter).
            await self._settle(message, requeue=False)
            return
        self.published[result.job_id] = None
        if len(self.published) > PUBLISHED_REMEMBERED:
            self.published.popitem(last=False)
        await self._settle(message, ack=True)
        self.completed += 1
        self.metrics.finished(result, ran=ran)
        log.info(
            "job finished",
            status=result.status,
            error_type=result.error.type if result.error else None,
            figures=len(result.figures),
            **result.timings.model_dump(),
        )

    async def _settle(self, message: AbstractIncomingMessage, *, ack: bool = False, requeue: bool = False) -> None:
        """Ack or nack; if the channel is gone, RabbitMQ already requeued the job."""
        try:
            if ack:
                await message.ack()
            else:
                await message.nack(requeue=requeue)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not settle the job message; the broker will redeliver it", error=repr(exc))

    async def on_dead_letter(self, message: AbstractIncomingMessage) -> None:
        """A job RabbitMQ gave up on: publish the failed result nobody else will."""
        try:
            job = RenderJob.model_validate_json(message.body)
        except ValidationError:
            log.error("dropping malformed dead-lettered message", message_id=message.message_id)
            await message.ack()
            return
        deaths = (message.headers or {}).get("x-death") or [{}]
        reason = deaths[0].get("reason", "unknown")
        with structlog.contextvars.bound_contextvars(job_id=job.job_id):
            if job.job_id in self.running:
                if await self._ran_here_after_all(job.job_id):
                    log.info("job dead-lettered while it ran here; its result is published; acking the dead letter")
                    await self._settle(message, ack=True)
                    return
            elif job.job_id not in self.published:
                # Another renderer may still be running it, or publishing its result through a broker
                # outage (RabbitMQ 3.10 counts channel closes as deliveries): let that result land first.
                delay = self.verdict_delay_s(job)
                log.warning("job dead-lettered; answering it once any run elsewhere had time to", wait_s=delay)
                await asyncio.sleep(delay)
            if job.job_id in self.published:
                await self._settle(message, ack=True)
                return
            log.error("job dead-lettered", reason=reason)
            result = self.crash_verdict(job, f"RabbitMQ dead-lettered it: {reason}")
            await self._publish_and_ack(result, message, ran=False)

    def verdict_delay_s(self, job: RenderJob) -> float:
        """How long a run of ``job`` elsewhere may still take to publish its result: carrying its input files to
        the page, its time limit, drawing its figures, and every try at publishing (RESULT_PUBLISH_BACKOFF, each
        waiting for its confirm)."""
        s = self.settings
        publishing = s.result_publish_attempts * s.publish_timeout_s + sum(
            RESULT_PUBLISH_BACKOFF.longest(n) for n in range(1, s.result_publish_attempts)
        )
        run = job.timeout_s + s.interrupt_grace_s + s.page_allowance_s + input_transfer_s(job)
        return run + s.export_timeout_s + publishing

    async def _ran_here_after_all(self, job_id: str) -> bool:
        """Whether this renderer, running the job when RabbitMQ gave up on it, published its result.

        RabbitMQ 3.10's quorum queues count every return towards the delivery
        limit, a channel closed by a broker restart included, so a job can reach
        the limit while it runs here, unharmed. Its own result, not a crash
        report, is then the answer; if the run ends without one (it crashed, it
        was handed back), the dead letter is answered as a crash after all.
        """
        if earlier := self.running.get(job_id):
            log.info("job dead-lettered while it runs here; waiting for that run")
            await asyncio.shield(earlier)
        return job_id in self.published

    async def drain(self, grace_s: float) -> None:
        """Stop taking jobs, give in-flight ones ``grace_s`` to finish, hand back the rest.

        Closing the channels returns every job still unacked to the queue, so a
        job interrupted by shutdown is redelivered, not lost.
        """
        for subscription in self.subscriptions:
            await subscription.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), grace_s)
        if self.in_flight:
            log.warning("grace period over; handing unfinished jobs back", in_flight=self.in_flight)
        runs = list(self.running.values())
        for run in runs:  # a run outlives its channel, so it is stopped here, before it could publish
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        for subscription in self.subscriptions:
            await subscription.close()
