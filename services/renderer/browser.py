"""One headless Chromium whose pages can reach nothing but plotfarm's own assets.

Pages load from a made-up origin (``http://plotfarm.invalid``) that no DNS
resolves and no socket serves: Playwright's routing answers every request for
it from :class:`~shared.assets.AssetStore` and aborts every other request.
Every response carries a strict Content-Security-Policy (workers take theirs
from their own script's response) and the cross-origin-isolation headers that
give workers the SharedArrayBuffer used to interrupt runaway code.
"""

import asyncio
import os
import shutil
from urllib.parse import urlsplit

import structlog
from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright

from shared.assets import AssetStore
from shared.settings import Settings

log = structlog.get_logger(__name__)

ASSET_ORIGIN = "https://plotfarm.invalid"
RENDERER_PAGE = f"{ASSET_ORIGIN}/renderer/index.html"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "worker-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--mute-audio",
]


def find_chromium(settings: Settings) -> str:
    for candidate in ((settings.chromium_path,) if settings.chromium_path else CHROMIUM_CANDIDATES):
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(
        "no Chromium found; install Debian's `chromium` package or set PLOTFARM_CHROMIUM_PATH"
    )


def sandbox_enabled(settings: Settings) -> bool:
    """Chromium's own sandbox refuses to start as root; keep it everywhere else."""
    if settings.chromium_sandbox == "auto":
        return os.geteuid() != 0
    return settings.chromium_sandbox == "on"


class HeadlessBrowser:
    def __init__(self, settings: Settings, assets: AssetStore):
        self.settings = settings
        self.assets = assets
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None
        self.context: BrowserContext | None = None
        self.blocked_requests = 0
        self.disconnected = asyncio.Event()

    async def start(self) -> None:
        executable = find_chromium(self.settings)
        sandbox = sandbox_enabled(self.settings)
        if self.playwright is None:
            self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            chromium_sandbox=sandbox,
            args=CHROMIUM_FLAGS,
        )
        self.disconnected.clear()
        self.browser.on("disconnected", lambda _browser: self.disconnected.set())
        self.context = await self.browser.new_context(service_workers="block", accept_downloads=False)
        await self.context.route("**/*", self._answer)
        log.info("chromium started", executable=executable, version=self.browser.version, sandbox=sandbox)

    async def new_page(self) -> Page:
        page = await self.context.new_page()
        page.on("console", lambda msg: log.debug("page console", text=msg.text[:500]))
        page.on("pageerror", lambda err: log.warning("page error", error=str(err)[:500]))
        await page.goto(RENDERER_PAGE)
        await page.wait_for_function("window.plotfarm !== undefined")
        return page

    async def _answer(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        asset = None
        if f"{url.scheme}://{url.netloc}" == ASSET_ORIGIN and route.request.method == "GET":
            asset = await asyncio.to_thread(self.assets.get, url.path)
        if asset is None:
            self.blocked_requests += 1
            log.warning("blocked request from renderer page", url=route.request.url[:200])
            await route.abort("blockedbyclient")
            return
        await route.fulfill(status=200, body=asset.body, headers={**ISOLATION_HEADERS, "Content-Type": asset.content_type})

    async def close(self) -> None:
        if self.browser is not None:
            try:
                await self.browser.close()
            except Exception:  # noqa: BLE001  (already gone)
                pass
            self.browser = None

    async def stop(self) -> None:
        await self.close()
        if self.playwright is not None:
            await self.playwright.stop()
            self.playwright = None
