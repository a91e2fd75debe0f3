"""The events follower's bookkeeping: offsets, catching up, a failing handler (no broker needed)."""

import asyncio

from shared.events import EventFollower
from shared.messages import JobQueued, utcnow
from shared.settings import Settings


class Message:
    def __init__(self, offset: int, body: bytes):
        self.headers = {"x-stream-offset": offset}
        self.body = body
        self.acked = False

    async def ack(self):
        self.acked = True


def queued(job_id: str) -> bytes:
    return JobQueued(job_id=job_id, code="x", submitted_at=utcnow()).model_dump_json().encode()


async def test_offsets_move_past_every_event_and_caught_up_is_set_at_the_end():
    seen = []
    follower = EventFollower(Settings(_env_file=None), lambda event, offset: seen.append((offset, event.job_id)))
    messages = [Message(10, queued("a")), Message(11, queued("b")), Message(12, queued("c"))]
    for message in messages:
        await follower._on_message(message, end=12)
    assert seen == [(10, "a"), (11, "b"), (12, "c")]
    assert (follower.last_offset, follower.next_offset) == (12, 13)
    assert follower.caught_up.is_set() and all(m.acked for m in messages)


async def test_caught_up_waits_for_the_end_seen_at_the_start():
    follower = EventFollower(Settings(_env_file=None), lambda event, offset: None)
    await follower._on_message(Message(5, queued("a")), end=7)
    assert not follower.caught_up.is_set()
    await follower._on_message(Message(7, queued("b")), end=7)
    assert follower.caught_up.is_set()


async def test_a_failing_handler_or_a_malformed_event_is_skipped_not_left_unacked():
    async def handler(event, offset):
        raise RuntimeError("boom")

    follower = EventFollower(Settings(_env_file=None), handler)
    broken, malformed = Message(1, queued("a")), Message(2, b"not json")
    await follower._on_message(broken, end=None)
    await follower._on_message(malformed, end=None)
    assert broken.acked and malformed.acked and follower.next_offset == 3


async def test_not_ready_says_why():
    follower = EventFollower(Settings(_env_file=None), lambda event, offset: None)
    assert follower.not_ready_because() == "not following the events stream yet"
    follower.problem = "PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue 'ns.events'"
    assert "x-max-age" in follower.not_ready_because()
    follower.connected.set()
    assert follower.not_ready_because() is None
    await asyncio.sleep(0)


async def test_on_stored_is_told_each_events_size_in_the_stream():
    from shared.messages import JobStarted

    stored = []
    follower = EventFollower(
        Settings(_env_file=None),
        lambda event, offset: None,
        on_stored=lambda event, offset, size: stored.append((offset, event.kind, size)),
    )
    running = JobStarted(job_id="a", renderer_id="r", attempt=1, started_at=utcnow()).model_dump_json().encode()
    for message in (Message(3, queued("a")), Message(4, running), Message(5, b"not json")):
        await follower._on_message(message, end=None)
    assert stored == [(3, "queued", len(queued("a"))), (4, "running", len(running))]
