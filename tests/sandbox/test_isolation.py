"""No job sees another's state: plant something in one job, look for it in the next.

With the default isolation (``job``) every probe must come back clean. The
``tenant`` setting reuses an interpreter only within one tenant (API keys
decide the tenant), and ``none`` reuses freely: both are checked to do
exactly what they claim, so the trade-off in the README is a fact.
"""

import aiohttp
import pytest

from tests.support import Api, Stack, new_stack

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

SHOW = "\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).show()\n"
ORDINARY = "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(y=[2, 3, 1]))\nfig.update_layout(title='ordinary')\nfig.show()\n"

LEAKS = {
    "monkeypatched_plotly": (
        "import plotly.graph_objects as go, plotly.io as pio\nfrom plotly.basedatatypes import BaseFigure\n"
        "go.Figure(go.Bar(y=[1])).show()\n"
        "go.Figure.show = lambda *a, **k: None\nBaseFigure.show = lambda *a, **k: None\npio.show = lambda *a, **k: None\n",
        ORDINARY + "print('figures shown normally')",
        "figures shown normally",
    ),
    "builtins_and_globals": (
        "import builtins\nbuiltins.LEAKED = 'secret'\nglobal_secret = 'secret'" + SHOW,
        "import builtins\nprint(getattr(builtins, 'LEAKED', 'clean'), globals().get('global_secret', 'clean'))" + SHOW,
        "clean clean",
    ),
    "files_in_tmp": (
        "open('/tmp/leak.txt', 'w').write('secret')\nopen('/home/pyodide/leak.txt', 'w').write('secret')" + SHOW,
        "import os\nprint(os.path.exists('/tmp/leak.txt'), os.path.exists('/home/pyodide/leak.txt'))" + SHOW,
        "False False",
    ),
    "poisoned_sys_modules": (
        "import sys\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1])).show()\n"
        "sys.modules['plotly.graph_objects'] = None\nsys.modules['json'] = None",
        ORDINARY + "import json\nprint('modules intact')",
        "modules intact",
    ),
    "js_timer_spying_on_the_next_job": (
        "import js\nfrom pyodide.ffi import create_proxy\n"
        "def spy():\n    js.self.spied = 'yes'\n"
        "js.setInterval(create_proxy(spy), 5)\njs.self.leaked = 'secret'" + SHOW,
        "import js, time\nstarted = time.time()\nwhile time.time() - started < 0.3:\n    pass\n"
        "print(getattr(js.self, 'leaked', 'clean'), getattr(js.self, 'spied', 'clean'))" + SHOW,
        "clean clean",
    ),
    "replaced_postmessage_and_forged_results": (
        "import js, json\nfrom pyodide.ffi import create_proxy, to_js\n"
        "forged = json.dumps({'figures': [], 'stdout': 'forged', 'stderr': '', 'error': None})\n"
        "message = to_js({'type': 'result', 'runId': 2, 'payload': forged}, dict_converter=js.Object.fromEntries)\n"
        "def forge(*args):\n    js.postMessage(message)\n"
        "js.MessagePort.prototype.postMessage = create_proxy(forge)\n"
        "js.setInterval(create_proxy(forge), 1)" + SHOW,
        "print('genuine')" + SHOW,
        "genuine",
    ),
}


async def plant_and_probe(api: Api, plant: str, probe: str, **fields) -> dict:
    planted = await api.render(plant, **fields)
    assert planted["status"] == "done", planted.get("error")
    probed = await api.render(probe, **fields)
    assert probed["status"] == "done", probed.get("error")
    return probed


@pytest.mark.parametrize("leak", LEAKS, ids=str)
async def test_job_isolation_leaves_nothing_for_the_next_job(leak, sandbox_api):
    plant, probe, clean = LEAKS[leak]
    probed = await plant_and_probe(sandbox_api, plant, probe)
    assert clean in probed["stdout"], probed["stdout"]
    assert "forged" not in probed["stdout"]
    assert len(probed["figures"]) >= 1


def _isolation_stack(amqp_url, log_dir, isolation: str, **gateway_env) -> Stack:
    stack = new_stack(amqp_url, log_dir, PLOTFARM_RENDERER_CONCURRENCY=1, PLOTFARM_ISOLATION=isolation)
    stack.start_gateway(**gateway_env)
    stack.start_renderer(f"{isolation}-renderer")
    return stack


@pytest.fixture(scope="module")
def reuse_stacks(amqp_url, tmp_path_factory):
    """A tenant-isolation renderer behind an API-keyed gateway (plus an open one), and a none-isolation renderer."""
    tenant = _isolation_stack(
        amqp_url, tmp_path_factory.mktemp("tenant"), "tenant", PLOTFARM_API_KEYS="alpha=alpha-key,beta=beta-key"
    )
    tenant.start_gateway("open-gateway")
    none = _isolation_stack(amqp_url, tmp_path_factory.mktemp("none"), "none")
    try:
        for stack in (tenant, none):
            for process in stack.processes.values():
                stack.wait_ready(process)
        yield tenant, none
    finally:
        for stack in (tenant, none):
            stack.close()


PLANT = "import builtins\nbuiltins.LEAKED = 'planted'" + SHOW
PROBE = "import builtins\nprint(getattr(builtins, 'LEAKED', 'clean'))" + SHOW


async def test_tenant_isolation_reuses_only_within_a_tenant(reuse_stacks):
    tenant_stack, _ = reuse_stacks
    gateway = tenant_stack.processes["gateway"].url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        alpha = Api(session, gateway)
        beta = Api(session, gateway)
        alpha.session = _with_key(session, "alpha-key")
        beta.session = _with_key(session, "beta-key")
        assert (await alpha.render(PLANT))["status"] == "done"
        same_tenant = await alpha.render(PROBE)
        other_tenant = await beta.render(PROBE)
        # Anonymous jobs (a gateway without keys) behave as in `job` isolation.
        anonymous = Api(session, tenant_stack.processes["open-gateway"].url)
        assert (await anonymous.render(PLANT))["status"] == "done"
        anonymous_probe = await anonymous.render(PROBE)
    assert same_tenant["stdout"].strip() == "planted"  # reused: fast, and the tenant's own state
    assert other_tenant["stdout"].strip() == "clean"
    assert anonymous_probe["stdout"].strip() == "clean"


async def test_none_isolation_reuses_interpreters_freely(reuse_stacks):
    _, none_stack = reuse_stacks
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        api = Api(session, none_stack.processes["gateway"].url)
        assert (await api.render(PLANT))["status"] == "done"
        probed = await api.render(PROBE)
    assert probed["stdout"].strip() == "planted"  # the documented risk of `none`


class _with_key:
    """The session, with an API key on every request (Api takes any object with post/get)."""

    def __init__(self, session: aiohttp.ClientSession, key: str):
        self._session, self._headers = session, {"X-API-Key": key}

    def post(self, *args, **kwargs):
        return self._session.post(*args, headers=self._headers, **kwargs)

    def get(self, *args, **kwargs):
        return self._session.get(*args, headers=self._headers, **kwargs)


async def test_an_interpreter_numpy_grew_to_gigabytes_is_discarded_even_when_reuse_is_allowed(reuse_stacks):
    """Under `none` a job that leaves 1.5 GiB of numpy arrays behind must not hand that interpreter on."""
    _, none_stack = reuse_stacks
    grow = (
        "import builtins, numpy as np\nbuiltins.KEPT = [np.ones(2**27), np.ones(2**26)]\nbuiltins.LEAKED = 'grown'"
        + SHOW
    )
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        api = Api(session, none_stack.processes["gateway"].url)
        assert (await api.render(PLANT))["status"] == "done"
        assert (await api.render(PROBE))["stdout"].strip() == "planted"  # reused while small
        grown = await api.render(grow, timeout_s=30)
        assert grown["status"] == "done", grown.get("error")
        probed = await api.render(
            PROBE + "\nimport js\nprint(js.Math.round(__import__('pyodide_js')._module.HEAP8.length / 2**20))"
        )
    lines = probed["stdout"].split()
    assert lines[0] == "clean", probed["stdout"]  # a fresh interpreter, not the grown one
    assert int(lines[1]) < 1024, f"the next job's interpreter has a {lines[1]} MiB heap"
