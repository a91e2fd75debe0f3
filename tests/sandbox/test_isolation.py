"""No job sees another's state: plant something in one job, look for it in the next.

With the default isolation (``job``) every probe must come back clean. The
``tenant`` setting reuses an interpreter only within one tenant (API keys
decide the tenant), and ``none`` reuses freely: both are checked to do
exactly what they claim, so the trade-off in the README is a fact.
"""

import asyncio
import contextlib
import json

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


# ---- interpreters restored from one snapshot -------------------------------------------------
#
# Every interpreter of the pool is restored from one snapshot, which the page keeps in
# SharedArrayBuffers (the memory snapshot, the site-packages tree) so that it is copied once,
# not once per interpreter. These tests attack that sharing from inside a job.

# Run inside an interpreter's worker (Playwright evaluates it there while the job awaits): walks
# every object a job's code can reach from JavaScript, from the worker's global scope and from
# Pyodide's API (`pyodide_js`, which the job parked on `self`), through own data properties,
# prototypes, Map/Set contents and typed arrays' buffers (getters are not called), and reports
# every SharedArrayBuffer found.
WALK_FOR_SHARED_BUFFERS = """() => {
  const tag = (value) => Object.prototype.toString.call(value);
  const sharedByteLength = Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, "byteLength").get;
  const sharedLength = (value) => { try { return sharedByteLength.call(value); } catch { return null; } };
  const PyProxy = self.plotfarmProbe.ffi.PyProxy;
  const seen = new Set();
  const queue = [[self, "self"], [self.plotfarmProbe, "pyodide_js"]];
  const shared = [];
  const push = (value, path) => {
    if (value !== null && (typeof value === "object" || typeof value === "function") && !seen.has(value)) queue.push([value, path]);
  };
  while (queue.length) {
    const [obj, path] = queue.pop();
    if (seen.has(obj)) continue;
    seen.add(obj);
    const length = sharedLength(obj);
    if (length !== null) { shared.push([length, path]); continue; }
    // Python objects: what they hold of JavaScript is in the module's JS-side tables, walked anyway.
    if (obj instanceof PyProxy) continue;
    if (ArrayBuffer.isView(obj)) { push(obj.buffer, `${path}.buffer`); continue; }
    if (obj instanceof WebAssembly.Memory) push(obj.buffer, `${path}.buffer`);
    try { Map.prototype.forEach.call(obj, (v, k) => { push(k, `${path}.key`); push(v, `${path}.get(${String(k).slice(0, 40)})`); }); } catch {}
    try { Set.prototype.forEach.call(obj, (v) => push(v, `${path}.item`)); } catch {}
    let keys = [];
    try { keys = Reflect.ownKeys(obj); } catch { continue; }
    for (const key of keys) {
      let descriptor;
      try { descriptor = Object.getOwnPropertyDescriptor(obj, key); } catch { continue; }
      if (descriptor && "value" in descriptor) push(descriptor.value, `${path}.${String(key)}`);
    }
    push(Object.getPrototypeOf(obj), `${path}.__proto__`);
  }
  const heap = tag(self.plotfarmProbe._module.HEAP8.buffer);
  return { visited: seen.size, shared, heap };
}"""
# The job that is walked: it parks Pyodide's API where the walk starts, then waits (its worker's
# event loop stays free, so Playwright can evaluate the walk there).
PARK_AND_WAIT = "import asyncio, js, pyodide_js\njs.self.plotfarmProbe = pyodide_js\nawait asyncio.sleep(8)\n" + SHOW

SITE_PACKAGES_WRITES = """
import errno, json, os, sysconfig
import plotly
site = sysconfig.get_paths()["purelib"]
target = os.path.join(os.path.dirname(plotly.__file__), "__init__.py")
attempts = {
    "append": lambda: open(target, "a").write("\\nLEAKED = 'planted'\\n"),
    "truncate": lambda: open(target, "w"),
    "create": lambda: open(os.path.join(site, "planted.py"), "w").write("LEAKED = 'planted'"),
    "remove": lambda: os.remove(target),
    "rename": lambda: os.rename(target, target + ".gone"),
    "mkdir": lambda: os.mkdir(os.path.join(site, "planted")),
    "chmod": lambda: os.chmod(target, 0o777),
}
outcome = {}
for name, attempt in attempts.items():
    try:
        attempt()
        outcome[name] = "succeeded"
    except OSError as exc:
        outcome[name] = errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps(outcome))
"""

PROBE_SNAPSHOT = """
import hashlib, json, os, sysconfig
import plotly
site = sysconfig.get_paths()["purelib"]
init = open(os.path.join(os.path.dirname(plotly.__file__), "__init__.py"), "rb").read()
print(json.dumps({
    "planted_file": os.path.exists(os.path.join(site, "planted.py")) or os.path.exists(os.path.join(site, "planted")),
    "planted_text": b"planted" in init,
    "init_sha256": hashlib.sha256(init).hexdigest(),
}))
"""


@pytest.fixture
async def renderer_page():
    """The renderer's page on its own (real Chromium, real Pyodide), to look inside its workers."""
    from services.renderer.browser import HeadlessBrowser
    from services.renderer.pages import PagePool
    from shared.settings import Settings

    settings = Settings(isolation="job", renderer_concurrency=1)
    pool = PagePool(HeadlessBrowser(settings), settings)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop()


async def test_restored_interpreters_share_no_buffer_a_job_can_reach(renderer_page):
    """From a job's worker nothing shared is reachable but its own interrupt flag; its heap is its own."""
    from shared.messages import RenderJob, utcnow

    job = RenderJob(job_id="walk", code=PARK_AND_WAIT, width=400, height=300, timeout_s=30, submitted_at=utcnow())
    running = asyncio.create_task(renderer_page.render(job))
    report = None
    for _ in range(100):
        await asyncio.sleep(0.1)
        for worker in renderer_page.pages[0].page.workers:
            with contextlib.suppress(Exception):
                if await worker.evaluate("() => Boolean(self.plotfarmProbe)"):
                    report = await worker.evaluate(WALK_FOR_SHARED_BUFFERS)
        if report:
            break
    result = await running
    assert result.error is None, result.error
    assert report is not None, "no worker ran the job"
    assert report["visited"] > 10_000, report  # it went through Pyodide's module, its FS and libraries
    sizes = [size for size, _path in report["shared"]]
    assert sizes == [1], report["shared"]  # the interrupt flag: no snapshot buffer is reachable
    assert report["heap"] == "[object ArrayBuffer]", report  # the interpreter's memory is not shared


async def test_the_snapshot_files_are_read_only_and_the_next_interpreter_gets_them_untouched(sandbox_api):
    before = await sandbox_api.render(PROBE_SNAPSHOT + SHOW)
    assert before["status"] == "done", before.get("error")
    pristine = json.loads(before["stdout"].strip().splitlines()[-1])
    planted = await sandbox_api.render(SITE_PACKAGES_WRITES + SHOW)
    assert planted["status"] == "done", planted.get("error")
    outcome = json.loads(planted["stdout"].strip().splitlines()[-1])
    # Changing the snapshot's files is refused (by their read-only modes, or by the filesystem);
    # new files are allowed (packages loaded on demand go there), and die with the interpreter.
    added = {name: outcome.pop(name) for name in ("create", "mkdir")}
    assert added == {"create": "succeeded", "mkdir": "succeeded"}, added
    assert set(outcome.values()) <= {"EACCES", "EROFS"}, outcome
    probed = await sandbox_api.render(PROBE_SNAPSHOT + ORDINARY)
    assert probed["status"] == "done", probed.get("error")
    after = json.loads(probed["stdout"].strip().splitlines()[-1])
    assert after == {**pristine, "planted_file": False, "planted_text": False}, (pristine, after)
    assert len(probed["figures"]) == 1
