"""``python -m services.renderer``: consume render jobs with warm Pyodide interpreters."""

import asyncio
import sys

import structlog

from services.renderer.service import Renderer
from shared.logging import configure_logging
from shared.service import stop_event
from shared.settings import get_settings


async def main() -> int:
    settings = get_settings()
    configure_logging(settings, "renderer")
    structlog.contextvars.bind_contextvars(renderer_id=settings.renderer_id)
    return await Renderer(settings).run(stop_event())


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
