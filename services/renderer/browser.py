"""One headless Chromium whose pages can reach nothing but plotfarm's own assets.

Chromium starts inside an empty network namespace when the kernel allows
(``unshare``), next to the asset server (see launcher.py and
asset_server.py), the only thing it can connect to. On top of that,
Playwright's request routing lets through only requests for the asset
server's origin and aborts everything else, and every asset carries a
strict Content-Security-Policy.

Chromium's own sandbox is on everywhere unless ``PLOTFARM_CHROMIUM_SANDBOX=off``
says otherwise. It cannot run as root, so a renderer running as root starts
Chromium (and the asset server) as the unprivileged system user
``plotfarm-chromium`` (``make`` creates it); see launcher.py. What Chromium
actually got, read from ``/proc`` (uid, seccomp mode, no_new_privs, own user
namespace, per process type: sandbox_audit.py), is logged once per start and
reported in ``/stats``: :meth:`HeadlessBrowser.sandbox_report`.
"""

import asyncio
import os
import pwd
import shlex
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from urllib.parse import urlencode

import structlog
from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright
from playwright.async_api import Error as PlaywrightError

from services.renderer.sandbox_audit import chromium_processes, sandbox_verdict, summarize
from shared.retry import Backoff, retry
from shared.settings import PROJECT_ROOT, Settings

log = structlog.get_logger(__name__)

# Inside a network namespace of its own nothing else can hold this port.
NAMESPACED_ASSET_PORT = 8731
# Who Chromium runs as when the renderer runs as root (`make` creates it:
# useradd --system). It owns nothing, has no login, and is in no group.
CHROMIUM_USER = "plotfarm-chromium"
# How the launcher says that user cannot read the project's files (see launcher.py).
LAUNCHER_CANNOT_READ = "cannot read the assets"

# Blink features that give a page or worker storage beyond what the profile's
# content settings refuse: storage buckets (each with its own IndexedDB, Cache
# Storage and file system), the origin-private file system, and the old
# webkitRequestFileSystem API. Checked by tests/sandbox/test_storage.py.
DISABLED_STORAGE_FEATURES = ("StorageBuckets", "FileSystemAccessAPI", "FileSystemAccessOriginPrivate", "FileSystem")
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
    # Storage no job needs, off at the source (the profile refuses the rest: launcher.py).
    "--disable-file-system",
    f"--disable-blink-features={','.join(DISABLED_STORAGE_FEATURES)}",
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
        # A mount namespace too (private): the launcher shows the asset server the
        # project's files there, wherever the checkout is (launcher.py, --assets-at).
        args, as_user, inner = ["--net", "--mount"], None, []
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


class ChromiumSetupError(RuntimeError):
    """Chromium cannot be started as configured; retrying will not help (the renderer exits EX_CONFIG)."""


@dataclass(frozen=True)
class Identity:
    """The unprivileged user Chromium runs as when the renderer is root."""

    name: str
    uid: int
    gid: int


def sandbox_enabled(settings: Settings) -> bool:
    """Chromium's own sandbox: on (``auto`` and ``on``) unless explicitly turned off."""
    return settings.chromium_sandbox != "off"


def chromium_identity(settings: Settings) -> Identity | None:
    """Whom the launcher makes Chromium run as; None: as we are (we are not root).

    As root, always the system user :data:`CHROMIUM_USER`: Chromium's sandbox
    needs a non-root uid, and even without the sandbox root has no business
    running a browser. Only ``PLOTFARM_CHROMIUM_SANDBOX=off`` without that
    user still runs Chromium as root (loudly).
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(CHROMIUM_USER)
    except KeyError:
        if not sandbox_enabled(settings):
            return None
        raise ChromiumSetupError(
            f"the renderer runs as root, so Chromium must run as the unprivileged system user {CHROMIUM_USER!r},"
            " which does not exist: run `make setup` (or `useradd --system --user-group --no-create-home"
            f" --home-dir /nonexistent --shell /usr/sbin/nologin {CHROMIUM_USER}`), run plotfarm as a normal"
            " user, or set PLOTFARM_CHROMIUM_SANDBOX=off to accept Chromium as root without its sandbox"
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ChromiumSetupError(f"the user {CHROMIUM_USER!r} has uid or gid 0; it must be unprivileged")
    return Identity(CHROMIUM_USER, entry.pw_uid, entry.pw_gid)


class HeadlessBrowser:
    def __init__(self, settings: Settings, playwright: Playwright | None = None):
        self.settings = settings
        self.playwright = playwright  # started in start() when not given; stopped in stop() either way
        self.browser: Browser | None = None
        self.context: BrowserContext | None = None
        self.blocked_requests = 0
        self.disconnected = asyncio.Event()
        self.running = asyncio.Event()
        self.network_namespace = "not started"
        self.asset_origin = ""
        self.identity: Identity | None = None
        self.sandbox = sandbox_enabled(settings)
        self._chromium = ""
        self._launcher: str | None = None
        self._assets_at: str | None = None
        self._sandbox_checked = False

    async def _executable(self) -> str:
        """A one-line launcher: [network namespace] -> asset server + Chromium."""
        chromium = self._chromium = find_chromium(self.settings)
        self.identity = chromium_identity(self.settings)
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
        if self.identity is not None:
            extra += ["--drop-to", f"{self.identity.uid}:{self.identity.gid}"]
            if namespace.prefix:
                extra += ["--assets-at", self._assets_mountpoint()]
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

    def _assets_mountpoint(self) -> str:
        """An empty directory the launcher bind-mounts the assets onto, in its own mount namespace.

        The checkout may lie where the unprivileged user cannot go (``/root`` is
        mode 0700); mounted here, read-only, only what is served becomes reachable
        to it. On the host the directory stays empty; :meth:`stop` removes it.
        """
        if self._assets_at is None:
            self._assets_at = tempfile.mkdtemp(prefix="plotfarm-assets-")
            os.chmod(self._assets_at, 0o755)
        return self._assets_at

    @property
    def runs_as(self) -> str:
        if self.identity is not None:
            return f"{self.identity.name} (uid {self.identity.uid})"
        return f"uid {os.getuid()}" + (" (root)" if os.geteuid() == 0 else "")

    async def start(self) -> None:
        executable = await self._executable()
        if not self.sandbox:
            log.warning(
                "CHROMIUM SANDBOX OFF: PLOTFARM_CHROMIUM_SANDBOX=off starts Chromium with --no-sandbox; "
                "code that escapes V8 and Pyodide is then not contained by Chromium",
                runs_as=self.runs_as,
            )
        if self.playwright is None:
            self.playwright = await async_playwright().start()
        try:
            self.browser = await self.playwright.chromium.launch(
                executable_path=executable,
                headless=True,
                # False makes Playwright add --no-sandbox: only on the explicit opt-out.
                chromium_sandbox=self.sandbox,
                args=[*CHROMIUM_FLAGS, f"--js-flags=--max-old-space-size={self.settings.js_heap_mb}"],
            )
        except PlaywrightError as exc:
            unreadable = next((line for line in str(exc).splitlines() if LAUNCHER_CANNOT_READ in line), None)
            if self.identity is not None and unreadable:
                # A restart would meet the same file permissions: say so once, and stop.
                raise ChromiumSetupError(unreadable.split("[err] ", 1)[-1]) from exc
            raise
        self.disconnected.clear()
        self._sandbox_checked = False
        self.browser.on("disconnected", self._on_disconnected)
        self.context = await self.browser.new_context(service_workers="block", accept_downloads=False)
        await self.context.route("**/*", self._answer)
        self.running.set()
        log.info(
            "chromium started",
            executable=self._chromium,
            version=self.browser.version,
            sandbox=self.sandbox,
            runs_as=self.runs_as,
            network_namespace=self.network_namespace,
        )

    def sandbox_report(self) -> dict:
        """What Chromium's processes got, read from /proc now (for /stats and the log)."""
        by_type = summarize(chromium_processes(self._chromium)) if self._chromium and self.running.is_set() else {}
        renderers = by_type.get("renderer", {})
        return {
            "sandbox": "on" if self.sandbox else "off",
            "runs_as": self.runs_as,
            "network_namespace": self.network_namespace,
            # The processes that run job code (pages and their workers).
            "renderer_processes": {k: renderers.get(k) for k in ("count", "uid", "seccomp", "no_new_privs")},
            "problem": sandbox_verdict(by_type, self.sandbox),
            "processes": by_type,
        }

    def _log_sandbox(self) -> None:
        report = self.sandbox_report()
        renderers = report["renderer_processes"]
        facts = {
            "sandbox": report["sandbox"],
            "uid": ",".join(map(str, renderers["uid"] or [])),
            "seccomp": ",".join(map(str, renderers["seccomp"] or [])),
            "no_new_privs": ",".join(map(str, renderers["no_new_privs"] or [])),
            "runs_as": report["runs_as"],
            "processes": {kind: group["count"] for kind, group in report["processes"].items()},
        }
        if report["problem"]:
            log.error("chromium sandbox NOT in effect", problem=report["problem"], **facts)
        elif self.sandbox:
            log.info("chromium sandbox", **facts)
        else:
            log.warning("chromium sandbox OFF", **facts)

    def _on_disconnected(self, _browser) -> None:
        self.running.clear()
        self.disconnected.set()

    async def restart(self) -> None:
        """Start a new Chromium after the old one died; forever, saying why each try failed."""
        await self.close()
        await retry(self.start, what="restart Chromium", attempts=None, backoff=Backoff(first_s=2))

    async def new_page(self, stored_snapshot: str | None = None, *, max_heap_bytes: int | None = None) -> Page:
        """A renderer page; ``stored_snapshot`` is the key of a snapshot stored on disk to restore from,
        ``max_heap_bytes`` the cap on each of its interpreters' memory."""
        page = await self.context.new_page()
        page.on("console", lambda msg: log.debug("page console", text=msg.text[:500]))
        page.on("pageerror", lambda err: log.warning("page error", error=str(err)[:500]))
        query = urlencode(
            {key: value for key, value in (("stored", stored_snapshot), ("maxHeapBytes", max_heap_bytes)) if value}
        )
        await page.goto(f"{self.asset_origin}/renderer/index.html" + (f"?{query}" if query else ""))
        await page.wait_for_function("window.plotfarm !== undefined")
        if not self._sandbox_checked:  # the first page of this Chromium: its renderer process exists now
            self._sandbox_checked = True
            await asyncio.to_thread(self._log_sandbox)
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
        if self._assets_at is not None:  # Chromium is gone, and its mount namespace with it
            shutil.rmtree(self._assets_at, ignore_errors=True)
            self._assets_at = None
