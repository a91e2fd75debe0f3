"""One headless Chromium whose pages can reach nothing but plotfarm's own assets.

Chromium starts inside an empty network namespace when the kernel allows
(``unshare``), next to the asset server (see launcher.py and
asset_server.py), the only thing it can connect to. On top of that,
Playwright's request routing lets through only requests for the asset
server's origin and aborts everything else, and every asset carries a
strict Content-Security-Policy.
"""

import asyncio
import os
import shlex
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass

import structlog
from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright

from shared.retry import Backoff, retry
from shared.settings import PROJECT_ROOT, Settings

log = structlog.get_logger(__name__)

# Inside a network namespace of its own nothing else can hold this port.
NAMESPACED_ASSET_PORT = 8731

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
    for candidate in (settings.chromium_path,) if settings.chromium_path else CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("no Chromium found; install Debian's `chromium` package or set PLOTFARM_CHROMIUM_PATH")


@dataclass
class Namespace:
    """How to start the launcher in an empty network namespace (or why it cannot be)."""

    prefix: list[str]  # the unshare command to run the launcher under; empty: no namespace
    as_user: str | None  # "uid:gid" the launcher maps back to before starting Chromium
    description: str


async def network_namespace(settings: Settings) -> Namespace:
    """An empty network namespace for Chromium and its asset server, where the kernel allows.

    Nothing in it but a loopback the launcher brings up: no route to the host,
    its loopback, or anywhere else. Root makes one directly. Other users need
    unprivileged user namespaces: the launcher runs as root *inside* a new
    user namespace (bringing loopback up takes that), then maps back to the
    real user in a nested one, so Chromium never sees uid 0 and keeps its own
    sandbox. Some kernels and container runtimes (Docker's default seccomp
    profile) refuse this; then the renderer says so and relies on the other layers.
    """
    if settings.network_namespace == "off":
        return Namespace([], None, "off (PLOTFARM_NETWORK_NAMESPACE=off)")
    unshare = shutil.which("unshare")
    if os.geteuid() == 0:
        args, as_user, inner = ["--net"], None, []
    else:
        args = ["--user", "--map-root-user", "--net"]
        as_user = f"{os.getuid()}:{os.getgid()}"
        inner = [unshare or "unshare", "--user", f"--map-user={os.getuid()}", f"--map-group={os.getgid()}", "--"]
    reason = "the unshare command is missing"
    if unshare:
        probe = await asyncio.create_subprocess_exec(
            unshare, *args, "--", *inner, "true", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await probe.communicate()
        if probe.returncode == 0:
            return Namespace([unshare, *args, "--"], as_user, f"on (unshare {' '.join(args)})")
        reason = err.decode(errors="replace").strip() or f"unshare exited with {probe.returncode}"
    if settings.network_namespace == "on":
        raise RuntimeError(f"PLOTFARM_NETWORK_NAMESPACE=on but no network namespace can be made: {reason}")
    return Namespace([], None, f"unavailable: {reason}")


def sandbox_enabled(settings: Settings) -> bool:
    """Chromium's own sandbox refuses to start as root; keep it everywhere else."""
    if settings.chromium_sandbox == "auto":
        return os.geteuid() != 0
    return settings.chromium_sandbox == "on"


class HeadlessBrowser:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None
        self.context: BrowserContext | None = None
        self.blocked_requests = 0
        self.disconnected = asyncio.Event()
        self.running = asyncio.Event()
        self.network_namespace = "not started"
        self.asset_origin = ""
        self._launcher: str | None = None

    async def _executable(self) -> str:
        """A one-line launcher: [network namespace] -> asset server + Chromium."""
        chromium = find_chromium(self.settings)
        namespace = await network_namespace(self.settings)
        self.network_namespace = namespace.description
        if namespace.prefix:
            port, extra = NAMESPACED_ASSET_PORT, ["--loopback"]
            if namespace.as_user:
                extra += ["--as-user", namespace.as_user]
        else:
            with socket.socket() as probe:  # host loopback: take a free port
                probe.bind(("127.0.0.1", 0))
                port, extra = probe.getsockname()[1], []
        self.asset_origin = f"http://127.0.0.1:{port}"
        command = [
            *namespace.prefix,
            sys.executable,
            "-m",
            "services.renderer.launcher",
            "--port",
            str(port),
            *extra,
            "--chromium",
            chromium,
            "--",
        ]
        if self._launcher is None:
            handle, self._launcher = tempfile.mkstemp(prefix="plotfarm-chromium-", suffix=".sh")
            os.close(handle)
            os.chmod(self._launcher, 0o755)
        with open(self._launcher, "w") as script:
            script.write(f"#!/bin/sh\nexport PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}\n")
            script.write(f'exec {shlex.join(command)} "$@"\n')
        return self._launcher

    async def start(self) -> None:
        executable = await self._executable()
        sandbox = sandbox_enabled(self.settings)
        if self.playwright is None:
            self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            chromium_sandbox=sandbox,
            args=[*CHROMIUM_FLAGS, f"--js-flags=--max-old-space-size={self.settings.js_heap_mb}"],
        )
        self.disconnected.clear()
        self.browser.on("disconnected", self._on_disconnected)
        self.context = await self.browser.new_context(service_workers="block", accept_downloads=False)
        await self.context.route("**/*", self._answer)
        self.running.set()
        log.info(
            "chromium started",
            executable=find_chromium(self.settings),
            version=self.browser.version,
            sandbox=sandbox,
            network_namespace=self.network_namespace,
        )

    def _on_disconnected(self, _browser) -> None:
        self.running.clear()
        self.disconnected.set()

    async def restart(self) -> None:
        """Start a new Chromium after the old one died; forever, saying why each try failed."""
        await self.close()
        await retry(self.start, what="restart Chromium", attempts=None, backoff=Backoff(first_s=2))

    async def new_page(self) -> Page:
        page = await self.context.new_page()
        page.on("console", lambda msg: log.debug("page console", text=msg.text[:500]))
        page.on("pageerror", lambda err: log.warning("page error", error=str(err)[:500]))
        await page.goto(f"{self.asset_origin}/renderer/index.html")
        await page.wait_for_function("window.plotfarm !== undefined")
        return page

    async def _answer(self, route: Route) -> None:
        """Let requests for the asset server through; abort everything else."""
        request = route.request
        if request.url.startswith(f"{self.asset_origin}/") and request.method == "GET":
            await route.continue_()
            return
        self.blocked_requests += 1
        log.warning("blocked request from renderer page", url=request.url[:200])
        await route.abort("blockedbyclient")

    async def close(self) -> None:
        self.running.clear()
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
        if self._launcher is not None:
            os.unlink(self._launcher)
            self._launcher = None
