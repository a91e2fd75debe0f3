"""A job's input files and variables reach its interpreter, on the real stack (issue 25, points 1 and 2).

Jobs are published as the gateway publishes them: a :class:`RenderJob` with
``files`` (name -> base64) and ``variables`` on the jobs queue, through the
same :class:`Broker`; results are read from the events stream, as the gateway
reads them. (The gateway's own handling of files, names and limits has its own
tests; this module is about what the renderer does with what arrives.)

One renderer with ``PLOTFARM_ISOLATION=tenant`` and one page: anonymous jobs
get a fresh interpreter each (as with ``job``), and jobs of one tenant reuse
one interpreter, which is where one job's files could outlive it.
"""

import asyncio
import base64
import io
import json
import random

import pytest

from shared.broker import Broker
from shared.events import EventFollower
from shared.messages import RenderJob, RenderResult, new_job_id, utcnow
from shared.settings import Settings
from tests.integration.inputs.make_inputs import HERE as INPUTS
from tests.integration.inputs.make_inputs import rows
from tests.support import new_stack, wait_until

pytestmark = pytest.mark.integration

RESULT_TIMEOUT_S = 180  # a busy shared machine; the jobs themselves take a second or two
FIGURE = "\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(x=['a'], y=[1])).show()\n"


@pytest.fixture(scope="module")
def stack(amqp_url, tmp_path_factory):
    """Overrides the shared stack: one renderer, tenant isolation, no gateway needed."""
    stack = new_stack(
        amqp_url,
        tmp_path_factory.mktemp("inputs-logs"),
        PLOTFARM_RENDERER_CONCURRENCY=1,
        PLOTFARM_ISOLATION="tenant",
    )
    try:
        renderer = stack.start_renderer("renderer-inputs")
        stack.wait_ready(renderer)
        yield stack
    finally:
        stack.close()


class Farm:
    """Publishes jobs the way the gateway does and waits for their results on the events stream."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self.results: dict[str, RenderResult] = {}

    def seen(self, event, _offset) -> None:
        if isinstance(event, RenderResult):
            self.results.setdefault(event.job_id, event)

    async def publish(self, code: str, *, files: dict[str, bytes] | None = None, variables=None, tenant=None) -> str:
        job = RenderJob(
            job_id=new_job_id(),
            code=code,
            files={name: base64.b64encode(data).decode() for name, data in (files or {}).items()},
            variables=variables or {},
            width=400,
            height=300,
            timeout_s=60,
            submitted_at=utcnow(),
            tenant=tenant,
        )
        await self.broker.publish_job(job)
        return job.job_id

    async def result(self, job_id: str) -> RenderResult:
        assert await wait_until(lambda: job_id in self.results, RESULT_TIMEOUT_S), f"no result for {job_id}"
        return self.results[job_id]

    async def run(self, code: str, **inputs) -> RenderResult:
        return await self.result(await self.publish(code, **inputs))

    async def printed(self, code: str, **inputs):
        """Run a job that prints one JSON document and shows a figure; what it printed."""
        result = await self.run(code + FIGURE, **inputs)
        assert result.status == "done", result.error
        assert result.figures and result.figures[0].svg.startswith("<svg")
        return json.loads(result.stdout)


@pytest.fixture
async def farm(stack):
    settings = Settings(_env_file=None, amqp_url=stack.amqp_url, namespace=stack.namespace)
    broker = await Broker(settings).connect()
    farm = Farm(broker)
    follower = EventFollower(settings, farm.seen)
    follower.start()
    try:
        yield farm
    finally:
        await follower.stop()
        await broker.close()


def big_csv(target_bytes: int = 15 * 1024 * 1024) -> bytes:
    """About ``target_bytes`` of CSV: an id, a category, two floats and a text column."""
    rng = random.Random(25)
    lines = ["id,category,x,y,note"]
    size = len(lines[0]) + 1
    i = 0
    while size < target_bytes:
        line = f"{i},{'abcde'[i % 5]},{rng.uniform(-1e3, 1e3):.6f},{rng.gauss(0, 1):.6f},row {i} of the big file"
        lines.append(line)
        size += len(line) + 1
        i += 1
    return ("\n".join(lines) + "\n").encode()


async def test_a_15_mb_csv_is_read_by_pandas(farm):
    import pandas as pd

    data = big_csv()
    assert len(data) >= 15 * 1024 * 1024
    expected = pd.read_csv(io.BytesIO(data))
    code = (
        "import json\nimport pandas as pd\nimport plotly.express as px\n"
        "df = pd.read_csv('sales.csv')\n"
        "print(json.dumps({'rows': len(df), 'columns': list(df.columns), 'x': float(df.x.sum()),\n"
        "    'by_category': df.groupby('category').size().to_dict(), 'last_note': df.note.iloc[-1]}))\n"
        "fig = px.histogram(df.sample(1000, random_state=1), x='x')\n"
    )
    result = await farm.run(code, files={"sales.csv": data})
    assert result.status == "done", result.error
    printed = json.loads(result.stdout)
    assert printed["rows"] == len(expected)
    assert printed["columns"] == ["id", "category", "x", "y", "note"]
    assert printed["x"] == pytest.approx(expected.x.sum())
    assert printed["by_category"] == expected.groupby("category").size().to_dict()
    assert printed["last_note"] == expected.note.iloc[-1]
    assert len(result.figures) == 1


async def test_a_parquet_file_is_read_with_pyarrow_loaded_on_demand(farm):
    table = rows()
    code = (
        "import json\nimport pandas as pd\n"
        "df = pd.read_parquet('sales.parquet')\n"
        "print(json.dumps({'rows': len(df), 'amount': float(df.amount.sum()), 'units': int(df.units.sum()),\n"
        "    'cities': sorted(df.city.unique()), 'day_type': str(df.day.dtype), 'first_day': str(df.day.iloc[0].date())}))\n"
    )
    result = await farm.run(code + FIGURE, files={"sales.parquet": (INPUTS / "sales.parquet").read_bytes()})
    assert result.status == "done", result.error
    printed = json.loads(result.stdout)
    assert printed["rows"] == len(table["city"])
    assert printed["amount"] == pytest.approx(sum(table["amount"]))
    assert printed["units"] == sum(table["units"])
    assert printed["cities"] == sorted(set(table["city"]))
    assert printed["day_type"].startswith("datetime64") and printed["first_day"] == str(table["day"][0])
    assert "pyarrow" in result.packages  # loaded for this job: the code never imports it


async def test_an_excel_file_is_read_with_openpyxl(farm):
    table = rows()
    code = (
        "import json\nimport pandas as pd\n"
        "df = pd.read_excel('sales.xlsx', sheet_name='sales')\n"
        "print(json.dumps({'rows': len(df), 'amount': float(df.amount.sum()), 'units': int(df.units.sum()),\n"
        "    'columns': list(df.columns)}))\n"
    )
    printed = await farm.printed(code, files={"sales.xlsx": (INPUTS / "sales.xlsx").read_bytes()})
    assert printed == {
        "rows": len(table["city"]),
        "amount": pytest.approx(sum(table["amount"])),
        "units": sum(table["units"]),
        "columns": ["city", "amount", "units", "day"],
    }


async def test_json_text_and_tsv_files_read_as_they_are(farm):
    document = {"name": "stations", "values": [1, 2, 3], "nested": {"ok": True, "none": None}}
    text = "first line\nsecond line, ünïcödé ✓\n"
    tsv = "a\tb\n1\tx\n2\ty\n"
    code = (
        "import json\nimport pandas as pd\n"
        "with open('data.json') as f: document = json.load(f)\n"
        "text = open('notes.txt', encoding='utf-8').read()\n"
        "raw = open('notes.txt', 'rb').read()\n"
        "tsv = pd.read_csv('table.tsv', sep='\\t')\n"
        "print(json.dumps({'document': document, 'text': text, 'raw_len': len(raw), 'tsv': tsv.to_dict('list')}))\n"
    )
    files = {"data.json": json.dumps(document).encode(), "notes.txt": text.encode(), "table.tsv": tsv.encode()}
    printed = await farm.printed(code, files=files)
    assert printed == {
        "document": document,
        "text": text,
        "raw_len": len(text.encode()),
        "tsv": {"a": [1, 2], "b": ["x", "y"]},
    }


async def test_variables_are_the_codes_globals(farm):
    variables = {
        "numbers": [3, 1.5, -2, 10**15],
        "labels": {"title": "from variables", "axis": "y"},
        "nested": {"series": [{"name": "a", "y": [1, 2]}, {"name": "b", "y": [None, 4]}], "flag": False},
        "note": "ünïcödé",
        "nothing": None,
    }
    code = (
        "import json\nimport plotly.graph_objects as go\n"
        "fig = go.Figure([go.Scatter(name=s['name'], y=s['y']) for s in nested['series']])\n"
        "fig.update_layout(title=labels['title'])\n"
        "print(json.dumps({'total': sum(numbers), 'types': [type(v).__name__ for v in (numbers, labels, nested, note, nothing)],\n"
        "    'nested': nested, 'note': note}))\n"
        "fig.show()\n"
    )
    result = await farm.run(code, variables=variables)
    assert result.status == "done", result.error
    printed = json.loads(result.stdout)
    assert printed["total"] == sum(variables["numbers"])
    assert printed["types"] == ["list", "dict", "dict", "str", "NoneType"]
    assert printed["nested"] == variables["nested"] and printed["note"] == variables["note"]
    assert "from variables" in result.figures[0].svg


READ_ONLY = """
import errno, json, os
attempts = {
    "write": lambda: open("data.csv", "w").write("x"),
    "append": lambda: open("data.csv", "a").write("x"),
    "read-write": lambda: open("data.csv", "r+").write("x"),
}
outcome = {}
for name, attempt in attempts.items():
    try:
        attempt()
        outcome[name] = "succeeded"
    except OSError as exc:
        outcome[name] = errno.errorcode.get(exc.errno, str(exc.errno))
data = open("data.csv").read()
open("out.csv", "w").write(data.upper())  # the working directory is the job's to write in
os.mkdir("sub")
print(json.dumps({"outcome": outcome, "listing": sorted(os.listdir(".")), "data": data,
                  "written": open("out.csv").read()}))
"""


async def test_input_files_are_read_only_in_a_directory_the_job_may_write_in(farm):
    printed = await farm.printed(READ_ONLY, files={"data.csv": b"a,b\n1,2\n"})
    assert printed["outcome"] == dict.fromkeys(printed["outcome"], "EACCES"), printed["outcome"]
    assert printed["data"] == "a,b\n1,2\n" and printed["written"] == "A,B\n1,2\n"
    assert printed["listing"] == ["data.csv", "out.csv", "sub"]


LISTING = """
import json, os
print(json.dumps({"cwd": os.getcwd(), "listing": sorted(os.listdir(".")),
                  "data": open("data.csv").read() if os.path.exists("data.csv") else None}))
"""


async def test_the_working_directory_holds_only_the_jobs_files(farm):
    files = {"a.csv": b"x\n1\n", "b.json": b"[1]", "c d (1).txt": b"spaces and brackets"}
    printed = await farm.printed(LISTING, files=files)
    assert printed["listing"] == sorted(files)
    empty = await farm.printed(LISTING)
    assert empty["listing"] == [] and empty["data"] is None


async def test_two_jobs_with_the_same_file_name_see_only_their_own_bytes(farm):
    first, second = b"owner\nfirst job\n", b"owner\nsecond job\n"
    ids = [await farm.publish(LISTING + FIGURE, files={"data.csv": data}) for data in (first, second)]
    results = await asyncio.gather(*(farm.result(job_id) for job_id in ids))
    seen = [json.loads(result.stdout)["data"] for result in results]
    assert seen == [first.decode(), second.decode()]


LEFTOVERS = """
import json, os, sys
found = []
for top in ("/home", "/tmp"):
    for root, dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(root, name)
            try:
                if name == "secret.csv" or b"tenant secret" in open(path, "rb").read():
                    found.append(path)
            except OSError:
                pass
print(json.dumps({"previous": getattr(sys, "plotfarm_inputs_test", None), "found": found,
                  "listing": sorted(os.listdir(".")), "cwd": os.getcwd()}))
sys.plotfarm_inputs_test = %r
"""


async def test_a_reused_interpreter_keeps_nothing_of_the_previous_jobs_files(farm):
    """Tenant isolation reuses the interpreter for the tenant's next job: the files must be gone by then."""
    secret = b"id,value\n1,tenant secret\n"
    first = await farm.printed(LEFTOVERS % "first", files={"secret.csv": secret}, tenant="inputs-tenant")
    assert first["listing"] == ["secret.csv"]
    second = await farm.printed(LEFTOVERS % "second", tenant="inputs-tenant")
    assert second["previous"] == "first", "the second job did not reuse the first one's interpreter: nothing was shown"
    assert second["found"] == [] and second["listing"] == []
    # The same name again, other bytes: only this job's own copy is there.
    third = await farm.printed(LEFTOVERS % "third", files={"secret.csv": b"mine"}, tenant="inputs-tenant")
    assert third["previous"] == "second"
    assert third["found"] == [third["cwd"] + "/secret.csv"] and third["listing"] == ["secret.csv"]


PLANTED = """
import json, os, sys
found = []
for top in ("/home", "/tmp"):
    for root, dirs, names in os.walk(top):
        for name in names:
            try:
                if b"planted by" in open(os.path.join(root, name), "rb").read():
                    found.append(os.path.join(root, name))
            except OSError:
                pass
print(json.dumps({"previous": getattr(sys, "plotfarm_inputs_test", None), "found": found, "root": sorted(os.listdir("/"))}))
sys.plotfarm_inputs_test = "probe"
"""


@pytest.mark.parametrize("name", ["../evil.py", "..", ".", "dir/name.csv", "nul\x00.csv"])
async def test_a_name_that_is_no_plain_file_name_fails_the_job(farm, name):
    """The gateway refuses these names; the renderer refuses them again, writing nothing anywhere.

    The probe after the refused job runs in the same interpreter (one tenant's, reused)."""
    tenant = f"names-{new_job_id()[:8]}"
    before = await farm.printed(PLANTED, tenant=tenant)
    result = await farm.run("print('ran')" + FIGURE, files={name: b"planted by a bad name"}, tenant=tenant)
    assert result.status == "failed" and result.stdout == ""
    assert result.error.type == "ValueError" and "file name" in result.error.message, result.error
    after = await farm.printed(PLANTED, tenant=tenant)
    assert after["previous"] == "probe", "the probe did not reuse the refused job's interpreter"
    assert after["found"] == [] and after["root"] == before["root"]
