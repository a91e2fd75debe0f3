"""Suspect jobs (redelivered after a crash) run alone; others share the page."""

import asyncio

from services.renderer.consumer import Admission


async def test_shared_jobs_overlap_and_a_suspect_waits_for_them():
    admission, log = Admission(), []

    async def job(name, alone, hold):
        async with admission.enter(alone=alone):
            log.append(f"+{name}")
            await asyncio.sleep(hold)
            log.append(f"-{name}")

    first = asyncio.create_task(job("a", False, 0.05))
    second = asyncio.create_task(job("b", False, 0.05))
    await asyncio.sleep(0.01)
    suspect = asyncio.create_task(job("s", True, 0.05))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(job("c", False, 0.01))  # must not overtake the waiting suspect
    await asyncio.gather(first, second, suspect, late)
    assert log[:2] == ["+a", "+b"]
    s_in, s_out = log.index("+s"), log.index("-s")
    assert s_out == s_in + 1  # nothing ran beside the suspect
    assert log.index("-a") < s_in and log.index("-b") < s_in
    assert log.index("+c") > s_out


async def test_a_suspect_cancelled_while_waiting_does_not_block_the_jobs_after_it():
    """aiormq cancels a consumer's callbacks when its channel closes; a suspect waiting to run
    alone must leave no trace, or every later job would wait for it forever."""
    admission = Admission()
    entered = asyncio.Event()

    async def shared(hold):
        async with admission.enter(alone=False):
            entered.set()
            await asyncio.sleep(hold)

    async def suspect():
        async with admission.enter(alone=True):
            pass

    running = asyncio.create_task(shared(0.2))
    await entered.wait()
    waiting = asyncio.create_task(suspect())
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await asyncio.wait_for(shared(0), timeout=1)  # enters beside the first, not after a ghost suspect
    await running
