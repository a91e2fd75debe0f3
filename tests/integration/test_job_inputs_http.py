"""Files, variables and figures with a job, on the real stack: JSON and multipart, the refusals, client.py, MCP.

The refusals are the gateway's alone. That a job then *reads* its files and variables is the
renderer's part (the interpreter writes the files into the job's working directory and binds
the variables), and a figure job is drawn by the renderer with no Python: those tests assert the
end result a user sees (the job printed the file's content, the figure's title is in its SVG).
"""

import base64
import json

import aiohttp
import pytest

from tests.integration.test_client_cli import client
from tests.integration.test_mcp import mcp_url, session, texts  # noqa: F401  (mcp_url is a fixture)

pytestmark = pytest.mark.integration

READ_FILES = (
    "import plotly.graph_objects as go\n"
    "print(open('sales.csv').read().strip())\n"
    "print(open('blob.bin', 'rb').read().hex())\n"
    "print('n =', n, 'label =', label)\n"
    "go.Figure(go.Bar(y=n)).show()\n"
)
FIGURE = {"data": [{"type": "bar", "x": ["a", "b"], "y": [3, 1]}], "layout": {"title": {"text": "Figure in"}}}
MAGIC = {
    "svg": b"<svg",
    "png": b"\x89PNG\r\n\x1a\n",
    "jpeg": b"\xff\xd8\xff",
    "webp": b"RIFF",
    "pdf": b"%PDF-",
    "json": b"{",
    "html": b"<!",
}


async def post(url: str, **kwargs) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as http:
        async with http.post(url, **kwargs) as response:
            body = await response.json(content_type=None)
            return response.status, body, dict(response.headers)


def form(*parts: tuple) -> tuple[bytes, dict]:
    """A form as curl or a browser writes it (aiohttp's FormData would percent-encode a filename's `/`)."""
    body = b""
    for name, value, *filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename[0]}"' if filename else "")
        raw = value.encode() if isinstance(value, str) else value
        body += f"--B0undary\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + raw + b"\r\n"
    return body + b"--B0undary--\r\n", {"Content-Type": "multipart/form-data; boundary=B0undary"}


# ---- the gateway's refusals (this branch alone) ----------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "a\u0000b"])
async def test_a_path_for_a_file_name_is_400_naming_it(stack, name):
    status, body, _ = await post(
        f"{stack.gateway_url}/api/jobs", json={"code": "print(1)", "files": {name: {"text": "a"}}}
    )
    assert status == 400 and repr(name) in body["error"], body
    data, headers = form(("code", "print(1)"), ("file", b"a", name))
    status, body, _ = await post(f"{stack.gateway_url}/api/jobs", data=data, headers=headers)
    # A NUL in a part's header is refused by the HTTP parser itself, before the name is read.
    assert status == 400 and ("file name" in body["error"] or "Invalid HTTP header" in body["error"]), body


async def test_over_the_byte_limit_is_413_with_the_limit_named(stack):
    limit = 20_000_000  # PLOTFARM_MAX_INPUT_BYTES's default, which the stack's gateway runs with
    body = {"code": "print(1)", "files": {"big.csv": {"text": "x" * limit}}, "variables": {"n": 1}}
    status, answer, _ = await post(f"{stack.gateway_url}/api/jobs", json=body)
    assert status == 413, answer
    assert str(limit) in answer["error"] and "PLOTFARM_MAX_INPUT_BYTES" in answer["error"]
    data, headers = form(("code", "print(1)"), ("file", b"x" * (limit + 1), "big.csv"))
    status, answer, _ = await post(f"{stack.gateway_url}/api/jobs", data=data, headers=headers)
    assert status == 413 and "PLOTFARM_MAX_INPUT_BYTES" in answer["error"], answer


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://elsewhere.example"},
        {"Origin": "https://elsewhere.example"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_a_cross_site_multipart_post_is_refused(stack, headers):
    data, form_headers = form(("code", "print('should never run')"))
    status, body, _ = await post(f"{stack.gateway_url}/api/jobs", data=data, headers={**form_headers, **headers})
    assert status == 403 and "another site" in body["error"], body


async def test_the_415_lists_both_media_types(stack):
    status, body, headers = await post(
        f"{stack.gateway_url}/api/jobs", data=b"code=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 415 and headers["Accept-Post"] == "application/json, multipart/form-data", body


async def test_forms_from_programs_and_the_gateways_own_page_are_accepted(stack):
    data, headers = form(("code", "print(1)"))
    for extra in ({}, {"Sec-Fetch-Site": "same-origin", "Origin": stack.gateway_url}):
        status, body, _ = await post(f"{stack.gateway_url}/api/jobs", data=data, headers={**headers, **extra})
        assert status == 202, body


# ---- the job reads them (needs the renderer's inputs work) ------------------------------------


async def test_a_json_job_reads_its_files_and_variables(api, stack):
    raw = bytes([0, 1, 254, 255])
    result = await api.render(
        READ_FILES,
        files={"sales.csv": {"text": "region,total\nnorth,12"}, "blob.bin": {"base64": base64.b64encode(raw).decode()}},
        variables={"n": [1, 3, 2], "label": "é"},
    )
    assert result["status"] == "done", result.get("error")
    assert "region,total\nnorth,12" in result["stdout"] and "0001feff" in result["stdout"]
    assert "n = [1, 3, 2] label = é" in result["stdout"]


async def test_a_multipart_job_reads_its_files(api, stack):
    job = json.dumps({"variables": {"n": [2, 2], "label": "form"}, "formats": ["svg"]})
    data, headers = form(
        ("code", READ_FILES),
        ("job", job),
        ("file", b"region,total\nsouth,7", "sales.csv"),
        ("other", b"\x00\x10", "blob.bin"),
    )
    status, accepted, _ = await post(f"{stack.gateway_url}/api/jobs", data=data, headers=headers)
    assert status == 202, accepted
    result = await api.result(accepted["job_id"])
    assert result["status"] == "done", result.get("error")
    assert "south,7" in result["stdout"] and "0010" in result["stdout"] and "label = form" in result["stdout"]


async def test_two_jobs_with_one_file_name_see_only_their_own_bytes(api, stack):
    code = "import plotly.graph_objects as go\nprint('saw', open('same.txt').read())\ngo.Figure().show()\n"
    first, second = [await api.submit(code, files={"same.txt": {"text": word}}) for word in ("first", "second")]
    one, two = await api.result(first["job_id"]), await api.result(second["job_id"])
    assert "saw first" in one["stdout"] and "second" not in one["stdout"], one
    assert "saw second" in two["stdout"] and "first" not in two["stdout"], two


# ---- figure jobs (need the renderer's figures work) -------------------------------------------


async def test_a_figure_job_is_drawn_with_no_code(stack, api):
    status, accepted, _ = await post(f"{stack.gateway_url}/api/jobs", json={"figure": FIGURE, "formats": ["svg"]})
    assert status == 202, accepted
    result = await api.result(accepted["job_id"])
    assert result["status"] == "done", result.get("error")
    assert "Figure in" in result["figures"][0]["svg"]


# ---- client.py --------------------------------------------------------------------------------


def test_client_data_and_var_reach_the_job(stack, tmp_path):
    """--data (a file and a directory) and --var (needs the renderer's inputs work)."""
    (tmp_path / "sales.csv").write_text("region,total\nwest,5\n")
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(b"\xab\xcd")
    script = tmp_path / "plot.py"
    script.write_text(READ_FILES)
    run = client(
        stack,
        "--file", str(script), "--data", str(tmp_path / "sales.csv"), "--data", str(folder),
        "--var", "n=[4, 5]", "--var", 'label="cli"', "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "west,5" in run.stdout and "abcd" in run.stdout and "n = [4, 5] label = cli" in run.stdout


@pytest.mark.parametrize("extension", ["svg", "png", "json", "html", "jpg", "jpeg", "webp", "pdf"])
def test_client_o_writes_the_first_figure_in_its_extensions_format(stack, tmp_path, extension):
    """-o with each extension (jpg/jpeg/webp/pdf need the renderer's formats work)."""
    code = "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1, 2]), layout_title_text='First').show()\n"
    code += "go.Figure(go.Bar(y=[2, 1]), layout_title_text='Second').show()\n"
    target = tmp_path / f"plot.{extension}"
    run = client(stack, "--code", code, "-o", str(target), "--out", str(tmp_path / "unused"))
    assert run.returncode == 0, run.stderr
    data = target.read_bytes()
    fmt = "jpeg" if extension == "jpg" else extension
    assert data.startswith(MAGIC[fmt]) or (fmt == "html" and b"<html" in data[:200].lower()), data[:40]
    if fmt in ("svg", "json"):
        assert b"First" in data and b"Second" not in data
    assert not (tmp_path / "unused").exists()  # -o alone writes one file
    assert f"wrote {target}" in run.stdout


def test_client_figure_sends_a_figure(stack, tmp_path):
    """--figure (needs the renderer's figures work)."""
    (tmp_path / "fig.json").write_text(json.dumps(FIGURE))
    run = client(stack, "--figure", str(tmp_path / "fig.json"), "-o", str(tmp_path / "fig.svg"))
    assert run.returncode == 0, run.stderr
    assert "Figure in" in (tmp_path / "fig.svg").read_text()


def test_client_batches_take_the_same_data(stack, tmp_path):
    """A batch: every job gets --data and --var (needs the renderer's inputs work)."""
    (tmp_path / "shared.txt").write_text("common")
    for name in ("b1", "b2"):
        (tmp_path / f"{name}.py").write_text(
            "import plotly.graph_objects as go\n"
            f"go.Figure(layout_title_text=open('shared.txt').read() + '-{name}-' + str(k)).show()\n"
        )
    out = tmp_path / "out"
    run = client(
        stack, str(tmp_path / "b1.py"), str(tmp_path / "b2.py"), "--data", str(tmp_path / "shared.txt"),
        "--var", "k=7", "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "common-b1-7" in (out / "b1.svg").read_text() and "common-b2-7" in (out / "b2.svg").read_text()


# ---- MCP --------------------------------------------------------------------------------------


async def test_mcp_render_plotly_reads_files_and_variables(mcp_url):  # noqa: F811
    """Needs the renderer's inputs work."""
    async with session(mcp_url) as agent:
        result = await agent.call_tool(
            "render_plotly",
            {
                "code": "import pandas as pd, plotly.express as px\n"
                "df = pd.read_csv('sales.csv')\nprint('rows', len(df), 'title', title)\n"
                "px.bar(df, x='region', y='total', title=title).show()\n",
                "files": {"sales.csv": "region,total\nnorth,3\nsouth,4\n"},
                "variables": {"title": "From MCP"},
            },
        )
    assert not result.is_error, texts(result)
    assert "rows 2 title From MCP" in texts(result)
    svg = next(block for block in result.content if block.type == "resource").resource.text
    assert "From MCP" in svg


async def test_mcp_render_figure_draws_the_figure(mcp_url):  # noqa: F811
    """Needs the renderer's figures work."""
    async with session(mcp_url) as agent:
        result = await agent.call_tool("render_figure", {"figure": FIGURE})
    assert not result.is_error, texts(result)
    images = [block for block in result.content if block.type == "image"]
    assert images and base64.b64decode(images[0].data).startswith(MAGIC["png"])
    assert "Figure in" in next(block for block in result.content if block.type == "resource").resource.text


async def test_mcp_refuses_a_path_for_a_file_name(mcp_url):  # noqa: F811
    async with session(mcp_url) as agent:
        result = await agent.call_tool("render_plotly", {"code": "print(1)", "files": {"../x": "a"}})
    assert result.is_error
