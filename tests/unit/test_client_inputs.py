"""client.py's new flags, offline: --data, --var, --figure and -o make the request the gateway takes.

client.py runs on the standard library alone, so it cannot import the vocabulary (pydantic):
its FORMATS and extensions are checked against it here. The bodies it builds are checked
against the gateway's own validator, so the two cannot drift apart.
"""

import base64
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import client
from services.gateway.validation import parse_job_request
from shared.settings import Settings
from shared.vocabulary import FORMAT_BY_EXTENSION, FORMATS

ROOT = Path(__file__).resolve().parents[2]


def test_formats_and_extensions_follow_the_vocabulary():
    assert client.FORMATS == FORMATS
    assert client.FORMAT_BY_EXTENSION == FORMAT_BY_EXTENSION


def args_for(**fields):
    defaults = {
        "data": None,
        "var": None,
        "format": None,
        "output_format": None,
        "width": None,
        "height": None,
        "job_timeout": None,
        "scale": None,
        "figure_json": None,
        "files": {},
        "variables": {},
    }
    return SimpleNamespace(**{**defaults, **fields})


def test_data_files_and_a_directory_become_base64_files(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.bin").write_bytes(bytes(range(256)))
    (folder / "c.json").write_text("[1]")
    (folder / ".hidden").write_text("no")
    (folder / "sub" / "deep.txt").write_text("not read")
    files, variables = client.read_inputs(args_for(data=[str(tmp_path / "a.csv"), str(folder)], var=None))
    assert sorted(files) == ["a.csv", "b.bin", "c.json"]
    assert base64.b64decode(files["b.bin"]) == bytes(range(256)) and variables == {}
    body = client.job_body(args_for(files=files), "print(1)")
    job = parse_job_request(json.dumps(body).encode(), Settings(_env_file=None))
    assert base64.b64decode(job.files["a.csv"]) == b"x,y\n1,2\n"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("n=3", 3),
        ("xs=[1, 2.5]", [1, 2.5]),
        ('title="Sales"', "Sales"),
        ('d={"a": null}', {"a": None}),
        ("eq=a=b", None),
    ],
)
def test_vars_are_json(var, value):
    if value is None:
        with pytest.raises(ValueError, match="not JSON"):
            client.read_inputs(args_for(var=[var]))
        return
    _, variables = client.read_inputs(args_for(var=[var]))
    name = var.split("=", 1)[0]
    assert variables == {name: value}


@pytest.mark.parametrize(("data", "words"), [(["missing.csv"], "no such file"), (["empty"], "has no files")])
def test_bad_data_says_why(tmp_path, data, words):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=words):
        client.read_inputs(args_for(data=[str(tmp_path / item) for item in data]))


def test_two_files_of_one_name_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.csv").write_text("1")
    with pytest.raises(ValueError, match="two files are named 'x.csv'"):
        client.read_inputs(args_for(data=[str(tmp_path / "a"), str(tmp_path / "b")]))


def test_a_figure_and_the_output_format_make_a_figure_job():
    figure = {"data": [{"type": "bar", "y": [1]}]}
    body = client.job_body(args_for(figure_json=figure, format=["svg"], output_format="jpeg", scale=2), None)
    assert body == {"figure": figure, "formats": ["svg", "jpeg"], "scale": 2}
    job = parse_job_request(json.dumps(body).encode(), Settings(_env_file=None))
    assert job.figures == [figure] and job.formats == ["svg", "jpeg"]


def run(*args, cwd=ROOT):
    return subprocess.run(
        ["python3", "-E", "-s", "-S", str(ROOT / "client.py"), "--gateway", "http://127.0.0.1:1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--code", "x", "-o", "plot.gif"], "the extension must name a format"),
        (["--figure", "fig.json", "--code", "x"], "cannot be combined"),
        (["--code", "x", "--var", "n"], "name=JSON"),
        (["--code", "x", "--data", "nowhere.csv"], "no such file"),
        (["a.py", "b.py", "-o", "x.png"], "for one job, not a batch"),
        (["--code", "x", "--scale", "0"], "above 0"),
    ],
)
def test_misuse_is_explained_on_the_standard_library_alone(tmp_path, args, words):
    for name in ("fig.json", "a.py", "b.py"):
        (tmp_path / name).write_text("{}")
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr, result.stderr
