"""One plotfarm for all the fault-injection tests, put back together between them.

Gateway, viewer and two renderers in a namespace of their own. Tests kill,
stop and restart its parts; :func:`healthy_stack` hands each test the stack
with every part running and ready again, the way an operator's restart
policy would leave it. The renderers reuse interpreters
(``PLOTFARM_ISOLATION=none``) so runs of hundreds of jobs finish in about a
minute on two cores (delivery does not depend on isolation; the sandbox suite
covers that), and their JavaScript heap is small so the poison job crashes
its page within seconds.
"""

import aiohttp
import pytest

from tests.faults.load import SUMMARIES, Run
from tests.support import Stack, new_stack

RENDERERS = ("renderer-a", "renderer-b")


@pytest.fixture(scope="module")
def fault_stack(amqp_url, tmp_path_factory):
    stack = new_stack(
        amqp_url,
        tmp_path_factory.mktemp("fault-logs"),
        PLOTFARM_ISOLATION="none",
        PLOTFARM_RENDERER_CONCURRENCY=2,
        PLOTFARM_JS_HEAP_MB=256,
    )
    try:
        gateway, viewer = stack.start_gateway(), stack.start_viewer()
        stack.gateway_url, stack.viewer_url = gateway.url, viewer.url
        for name in RENDERERS:
            stack.start_renderer(name)
        yield stack
    finally:
        stack.close()


@pytest.fixture
def healthy_stack(request, fault_stack):
    for name in RENDERERS:
        process = fault_stack.processes[name]
        if process.proc.poll() is not None:
            process.stop()
            fault_stack.start_renderer(name)
    for process in fault_stack.processes.values():
        fault_stack.wait_ready(process)
    yield fault_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:  # the logs are gone with the temp dir; CI keeps only stdout
        print(fault_stack.logs(60, problems_only=True))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


def new_run(name: str, stack: Stack) -> Run:
    return Run(name, stack.gateway_url, stack.viewer_url)


def pytest_terminal_summary(terminalreporter):
    if SUMMARIES:
        terminalreporter.section("fault-injection summaries")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
