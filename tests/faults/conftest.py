"""A fresh plotfarm per fault test: its own namespace, gateway, viewer and renderers.

The renderers reuse interpreters (``PLOTFARM_ISOLATION=none``) so a run of
hundreds of jobs finishes in about a minute on two cores: delivery does not
depend on the isolation setting, and the sandbox suite covers isolation.
"""

import asyncio

import aiohttp
import pytest

from tests.faults.load import Run
from tests.support import Stack, delete_namespace, new_namespace


@pytest.fixture
def fault_stack(amqp_url, tmp_path):
    stacks = []

    def make(renderers: int = 2, **env) -> Stack:
        namespace = new_namespace()
        base = {
            "PLOTFARM_AMQP_URL": amqp_url,
            "PLOTFARM_NAMESPACE": namespace,
            "PLOTFARM_LOG_FORMAT": "json",
            "PLOTFARM_ISOLATION": "none",
            "PLOTFARM_RENDERER_CONCURRENCY": "2",
            "PLOTFARM_RATE_LIMIT_PER_MINUTE": "0",
            **{k: str(v) for k, v in env.items()},
        }
        stack = Stack(amqp_url, namespace, tmp_path, base)
        stacks.append(stack)
        gateway, viewer = stack.start_gateway(), stack.start_viewer()
        names = [f"renderer-{chr(ord('a') + i)}" for i in range(renderers)]
        for name in names:
            stack.start_renderer(name)
        for process in stack.processes.values():
            stack.wait_ready(process)
        stack.gateway_url, stack.viewer_url = gateway.url, viewer.url
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()
        asyncio.run(delete_namespace(stack.amqp_url, stack.namespace))


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


def new_run(name: str, stack: Stack) -> Run:
    return Run(name, stack.gateway_url, stack.viewer_url)
