"""``python -m services.renderer``: consume render jobs with warm Pyodide interpreters.

Playwright's driver (a Node.js process, about a quarter of a second before
it answers) starts first, and the rest of the renderer (aio-pika, pydantic,
aiohttp: about a third of a second of imports) is imported in a thread
meanwhile: both used to lie one after the other on every cold start's path.
"""

import asyncio
import importlib
import sys

from playwright.async_api import async_playwright


async def main() -> int:
    driver = asyncio.ensure_future(async_playwright().start())
    # The imports below then find these modules loaded.
    await asyncio.to_thread(importlib.import_module, "services.renderer.service")
    import structlog

    from services.renderer.service import Renderer
    from shared.logging import configure_logging
    from shared.service import stop_event
    from shared.settings import get_settings

    settings = get_settings()
    configure_logging(settings, "renderer")
    structlog.contextvars.bind_contextvars(renderer_id=settings.renderer_id)
    return await Renderer(settings, playwright=await driver).run(stop_event())


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
