"""One real plotfarm for the integration tests: gateway, viewer, two renderers.

All of it runs as separate processes against the real broker, real Chromium
and real Pyodide, in a namespace of its own that is deleted afterwards.
"""

import aiohttp
import pytest

from tests.support import Api, new_stack

RENDERERS = ("renderer-a", "renderer-b")


@pytest.fixture(scope="session")
def stack(amqp_url, tmp_path_factory):
    stack = new_stack(amqp_url, tmp_path_factory.mktemp("logs"), PLOTFARM_RENDERER_CONCURRENCY=1)
    try:
        gateway = stack.start_gateway()
        viewer = stack.start_viewer()
        renderers = [stack.start_renderer(name) for name in RENDERERS]
        for process in (gateway, viewer, *renderers):
            stack.wait_ready(process)
        stack.gateway_url, stack.viewer_url = gateway.url, viewer.url
        yield stack
    finally:
        stack.close()


@pytest.fixture
async def api(stack):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
        yield Api(session, stack.gateway_url)


@pytest.fixture(autouse=True)
def _show_service_logs_on_failure(request, stack):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_terminal_summary(terminalreporter):
    from tests.integration import test_fidelity  # its results, if it ran

    if test_fidelity.RESULTS:
        terminalreporter.section("fidelity: every trace type, plotfarm vs Kaleido")
        for line in test_fidelity.summary_lines():
            terminalreporter.write_line(line)
