"""The renderer's consume loop: one job in, one confirmed result out, then ack.

The order is what makes delivery at-least-once:

1. take a job (manual ack, prefetch = number of interpreters);
2. announce it (``running`` event, best effort);
3. run it in a warm interpreter under its time limit;
4. publish the result persistently and wait for the broker's confirm;
5. only then ack the job.

A renderer that dies anywhere before 5 leaves the job unacked, so RabbitMQ
hands it to another renderer. If the interpreter's page or browser dies under
a job, the job is handed back (nack + requeue); the quorum queue counts those
deliveries and dead-letters a job that keeps killing renderers, and
:meth:`JobConsumer.on_dead_letter` turns it into a failed result.

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

from services.renderer.page import InterpreterCrashed, RendererPage
from services.renderer.sanitize import UnsafeSvg, sanitize_svg
from shared.broker import Broker, BrokerUnavailable, Subscription
from shared.messages import JobError, JobStarted, RenderJob, RenderResult, Timings, ms_between, utcnow
from shared.metrics import RendererMetrics
from shared.page_contract import OUTPUT_LIMIT_EXCEEDED, PageResult
from shared.retry import Backoff, RetriesExhausted, retry
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Pauses between attempts to publish a result while RabbitMQ is away (a restart takes seconds).
RESULT_PUBLISH_BACKOFF = Backoff(first_s=0.5, max_s=5.0)
# Job ids whose results this renderer published, remembered to ack their redeliveries unrun.
PUBLISHED_REMEMBERED = 10_000


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


def _too_large(n: int, what: str, size: int, limit: int) -> JobError:
    return JobError(type=OUTPUT_LIMIT_EXCEEDED, message=f"figure {n} is {size} bytes of {what}; the limit is {limit}")


def checked_figures(output: PageResult, settings: Settings) -> PageResult:
    """The page's answer with its SVGs sanitised and every file within its size limit (or the job failed)."""
    if output.error:
        return output

    def failed(error: JobError) -> PageResult:
        return output.model_copy(update={"figures": [], "error": error})

    for n, figure in enumerate(output.figures, 1):
        if figure.svg is not None and len(figure.svg) > settings.max_svg_bytes:
            return failed(_too_large(n, "SVG", len(figure.svg), settings.max_svg_bytes))
        png_bytes = len(figure.png) * 3 // 4 if figure.png is not None else 0
        if png_bytes > settings.max_png_bytes:
            return failed(_too_large(n, "PNG", png_bytes, settings.max_png_bytes))
    try:
        figures = [
            figure.model_copy(update={"svg": sanitize_svg(figure.svg)}) if figure.svg is not None else figure
            for figure in output.figures
        ]
    except UnsafeSvg as exc:
        return failed(JobError(type="UnsafeSvg", message=str(exc)))
    return output.model_copy(update={"figures": figures})


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
                type=OUTPUT_LIMIT_EXCEEDED,
                message=f"the result is {size} bytes; the limit is {settings.max_result_bytes}",
            ),
            renderer_id=settings.renderer_id,
            attempt=attempt,
            timings=result.timings,
            stdout=output.stdout,
            stderr=output.stderr,
        )
    return result


class JobConsumer:
    """Takes jobs from the jobs queue (and dead letters), runs them on the page, publishes, acks."""

    def __init__(self, settings: Settings, broker: Broker, page: RendererPage, metrics: RendererMetrics | None = None):
        self.settings = settings
        self.broker = broker
        self.page = page
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
        for queue, callback in (("jobs_queue", self.on_job), ("dead_letter_queue", self.on_dead_letter)):
            self.subscriptions.append(await self.broker.consume(queue, callback, prefetch=prefetch))
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
        with contextlib.suppress(BrokerUnavailable):
            await self.broker.publish_event(
                JobStarted(
                    job_id=job.job_id, renderer_id=self.settings.renderer_id, attempt=attempt, started_at=started
                )
            )
        try:
            async with self.admission.enter(alone=attempt > 1):
                output = await self.page.render(job)
        except InterpreterCrashed as exc:
            log.warning("interpreter crashed under the job; handing it back", error=str(exc))
            self.metrics.handed_back("interpreter_crashed")
            await self._settle(message, requeue=True)
            return
        output = await asyncio.to_thread(checked_figures, output, self.settings)
        result = build_result(job, output, self.settings, started=started, attempt=attempt)
        await self._publish_and_ack(result, message)

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
            if await self._ran_here_after_all(job.job_id):
                log.info("job dead-lettered while it ran here, and its result is published; acking the dead letter")
                await self._settle(message, ack=True)
                return
            error = JobError(
                type="RendererCrashed",
                message=(
                    f"the renderer crashed {self.settings.delivery_limit} times while running this job "
                    f"(RabbitMQ dead-lettered it: {reason}); it will not be retried"
                ),
            )
            result = RenderResult.failure(
                job, error, renderer_id=self.settings.renderer_id, attempt=self.settings.delivery_limit
            )
            log.error("job dead-lettered", reason=reason)
            await self._publish_and_ack(result, message, ran=False)

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
