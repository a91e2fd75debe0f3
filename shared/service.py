"""The start-up and shut-down shape every service shares."""

import asyncio
import signal

from aiohttp import web


def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so services can shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
