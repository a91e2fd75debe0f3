"""Browser tests of the two pages: real headless Chromium driven by Playwright.

One plotfarm (gateway, viewer, one renderer) runs for this package, as
processes on the real broker in a namespace of its own. The viewer listens on
a fixed port so a test can restart it and pages reconnect to the same address.

The numbers the tests measure (push latency, first vs repeat visit) are
printed at the end of the run under "plotfarm e2e measurements" and written to
``e2e-measurements.txt`` in the test log directory; the screenshots go there too
and, when ``PLOTFARM_E2E_SCREENSHOTS=DIR`` is set, also to DIR (``docs`` for the
README's).
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import APIRequestContext, Browser, Page, sync_playwright

from tests.support import ROOT, ServiceProcess, Stack, free_port, new_stack

CHROMIUM = "/usr/lib/chromium/chromium"
VIEWPORT = {"width": 1400, "height": 1000}
SCREENSHOTS_ENV = "PLOTFARM_E2E_SCREENSHOTS"

# Installed in every page before its own scripts: what a test asserts on.
# A CSP violation means something tried to run or load what the policy forbids.
RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`);
});
"""

MEASUREMENTS: list[str] = []
MEASUREMENTS_FILE: list[Path] = []


def chromium_args() -> list[str]:
    args = ["--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses its sandbox as root
    return args


@dataclass
class E2EStack:
    stack: Stack
    viewer_port: int
    log_dir: Path
    screenshots: list[Path] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return self.stack.gateway_url

    @property
    def viewer_url(self) -> str:
        return f"http://127.0.0.1:{self.viewer_port}"

    def start_viewer(self) -> ServiceProcess:
        env = self.stack.service_env(PLOTFARM_VIEWER_PORT=self.viewer_port)
        process = ServiceProcess("viewer", "services.viewer", env, self.log_dir / "viewer.log").start()
        process.url = self.viewer_url
        self.stack.processes["viewer"] = process
        return process

    def restart_viewer(self, while_down=None):
        """Stop the viewer, run ``while_down()``, start it again on the same port; ``while_down``'s result."""
        assert self.stack.processes["viewer"].stop() == 0
        result = while_down() if while_down else None
        self.stack.wait_ready(self.start_viewer(), timeout=60)
        return result


@pytest.fixture(scope="package")
def e2e(amqp_url, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    MEASUREMENTS_FILE[:] = [log_dir / "e2e-measurements.txt"]
    viewer_port = free_port()
    stack = new_stack(
        amqp_url,
        log_dir,
        PLOTFARM_RENDERER_CONCURRENCY=1,
        PLOTFARM_PUBLIC_VIEWER_URL=f"http://127.0.0.1:{viewer_port}",
    )
    e2e = E2EStack(stack, viewer_port, log_dir)
    try:
        gateway = stack.start_gateway()
        viewer = e2e.start_viewer()
        renderer = stack.start_renderer("renderer-e2e")
        for process in (gateway, viewer, renderer):
            stack.wait_ready(process)
        stack.gateway_url, stack.viewer_url = gateway.url, viewer.url
        yield e2e
    finally:
        stack.close()


@pytest.fixture(scope="package")
def playwright():
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright) -> Browser:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
    yield browser
    browser.close()


class Gateway:
    """The gateway's HTTP API through Playwright's request client (so route handlers keep running)."""

    def __init__(self, request: APIRequestContext):
        self.request = request

    def submit(self, code: str, **fields) -> str:
        response = self.request.post("/api/jobs", data={"code": code, **fields})
        assert response.status == 202, response.text()
        return response.json()["job_id"]

    def wait(self, job_id: str, timeout: float = 120, include_svg: bool = False) -> dict:
        deadline = time.monotonic() + timeout
        params = {"wait": "20", **({"include": "svg"} if include_svg else {})}
        while True:
            response = self.request.get(f"/api/jobs/{job_id}", params=params)
            assert response.status == 200, response.text()
            job = response.json()
            if job["status"] in ("done", "failed"):
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout} s"

    def render(self, code: str, include_svg: bool = False) -> dict:
        return self.wait(self.submit(code), include_svg=include_svg)


@pytest.fixture(scope="package")
def gateway(playwright, e2e) -> Gateway:
    request = playwright.request.new_context(base_url=e2e.gateway_url, timeout=60_000)
    yield Gateway(request)
    request.dispose()


@pytest.fixture
def new_page(browser):
    """Pages in a fresh context each (no shared cache or storage), closed after the test."""
    contexts = []

    def make(url: str | None = None) -> Page:
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(RECORDER)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        if url:
            page.goto(url)
        return page

    yield make
    for context in contexts:
        context.close()


def csp_violations(page: Page) -> list[str]:
    return page.evaluate("() => window.__cspViolations")


def record(line: str) -> None:
    """A measured number, for the summary at the end of the run (no assertion on it)."""
    MEASUREMENTS.append(line)
    if MEASUREMENTS_FILE:
        with MEASUREMENTS_FILE[0].open("a") as handle:
            handle.write(line + "\n")
    print(line)


def screenshot(page: Page, e2e: E2EStack, name: str) -> Path:
    path = e2e.log_dir / name
    page.screenshot(path=str(path))
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        directory = Path(target) if Path(target).is_absolute() else ROOT / target
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(path.read_bytes())
    e2e.screenshots.append(path)
    record(f"screenshot: {path}" + (f" (and {target}/{name})" if target else ""))
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("plotfarm e2e measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
        if MEASUREMENTS_FILE:
            terminalreporter.write_line(f"(also in {MEASUREMENTS_FILE[0]})")


@pytest.fixture(autouse=True)
def _show_service_logs_on_failure(request, e2e):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(e2e.stack.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
