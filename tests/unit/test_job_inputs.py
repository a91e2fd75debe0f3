"""Files, variables and figures with a job: every rule of the request side, JSON and multipart, without a broker.

What reaches the broker is checked on the job itself (FakeBroker keeps it): the files as base64
of their bytes, the variables as sent, the figures as a list.
"""

import base64
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_app
from services.gateway.validation import InvalidRequest, parse_job_request, request_body_limit
from shared.jobs import JobIndex
from shared.settings import Settings
from shared.vocabulary import MAX_FILE_NAME_BYTES
from tests.unit.test_gateway_app import FakeBroker, FakeFollower

SETTINGS = Settings(_env_file=None)
GW = "http://gw.example"
SMALL = {"max_input_bytes": 1000, "max_input_files": 3, "max_code_bytes": 100, "max_figures": 2}


def parse(body, settings=SETTINGS):
    return parse_job_request(json.dumps(body).encode(), settings)


def refused(body, settings=SETTINGS) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(body, settings)
    return caught.value


# ---- JSON: files --------------------------------------------------------------------------------


def test_text_files_travel_as_utf8_bytes_and_base64_files_as_their_bytes():
    raw = bytes(range(256))
    job = parse(
        {
            "code": "print(open('a.csv').read())",
            "files": {"a.csv": {"text": "x,y\n1,é\n"}, "blob.bin": {"base64": base64.b64encode(raw).decode()}},
        }
    )
    assert base64.b64decode(job.files["a.csv"]) == "x,y\n1,é\n".encode()
    assert base64.b64decode(job.files["blob.bin"]) == raw
    assert job.figures is None and job.variables == {}


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "a\\b", "a\x00b", "..", ".", "...", "x\n", "/etc/passwd", "dir/", "\x7f"]
)
def test_a_file_name_that_is_not_one_plain_name_is_400_naming_it(name):
    error = refused({"code": "x", "files": {name: {"text": "a"}}})
    assert error.status == 400
    assert repr(name) in error.message and "file name" in error.message


@pytest.mark.parametrize("name", [".hidden", "a..b", "sales 2024 (1).csv", "données.json", "x" * 255, "é" * 127])
def test_plain_names_are_taken(name):
    assert set(parse({"code": "x", "files": {name: {"text": "a"}}}).files) == {name}


def test_a_name_over_the_byte_limit_is_400_though_short_in_characters():
    name = "é" * (MAX_FILE_NAME_BYTES // 2 + 1)  # 128 characters, 256 bytes
    error = refused({"code": "x", "files": {name: {"text": "a"}}})
    assert error.status == 400 and "too long" in error.message and str(MAX_FILE_NAME_BYTES) in str(error.details)


@pytest.mark.parametrize("text", ["AAE", "AA-_", "AAE=\n", " AAE=", "AAE=AAE=", "é", "AAE==", "=AAE"])
def test_base64_is_decoded_strictly(text):
    error = refused({"code": "x", "files": {"data.bin": {"base64": text}}})
    assert error.status == 400 and error.message == "file 'data.bin' is not valid base64"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"text": "a", "base64": "AAE="}, "file 'f' needs its content"),
        ({}, "file 'f' needs its content"),
        ({"txt": "a"}, "file 'f' has an unknown field"),
        ({"text": 1}, "invalid job request"),
        ("a", "invalid job request"),
    ],
)
def test_a_file_needs_text_or_base64(content, message):
    error = refused({"code": "x", "files": {"f": content}})
    assert (error.status, error.message) == (400, message)
    assert error.details[0]["field"].startswith("files.f")


def test_file_count_and_input_bytes_are_limited():
    small = Settings(_env_file=None, **SMALL)
    error = refused({"code": "x", "files": {f"f{i}": {"text": ""} for i in range(4)}}, small)
    assert error.status == 400 and "PLOTFARM_MAX_INPUT_FILES" in str(error.details)
    parse(
        {"code": "x", "files": {"a": {"text": "a" * 600}, "b": {"base64": base64.b64encode(b"b" * 400).decode()}}},
        small,
    )
    over = refused({"code": "x", "files": {"a": {"text": "a" * 600}, "b": {"text": "b" * 401}}}, small)
    assert over.status == 413 and "1000" in over.message and "PLOTFARM_MAX_INPUT_BYTES" in over.message
    utf8 = refused({"code": "x", "files": {"a": {"text": "é" * 501}}}, small)  # 501 characters, 1002 bytes
    assert utf8.status == 413


# ---- JSON: variables -----------------------------------------------------------------------------


def test_variables_are_kept_and_count_toward_the_input_bytes():
    job = parse({"code": "print(n)", "variables": {"n": [1, 2.5, None, {"a": "é"}], "_": True, "x1": "s"}})
    assert job.variables == {"n": [1, 2.5, None, {"a": "é"}], "_": True, "x1": "s"}
    small = Settings(_env_file=None, **SMALL)
    error = refused({"code": "x", "files": {"a": {"text": "a" * 990}}, "variables": {"v": "0123456789"}}, small)
    assert error.status == 413 and "PLOTFARM_MAX_INPUT_BYTES" in error.message


@pytest.mark.parametrize("name", ["class", "None", "True", "lambda", "import", "async"])
def test_python_keywords_cannot_name_a_variable(name):
    error = refused({"code": "x", "variables": {name: 1}})
    assert error.status == 400 and repr(name) in error.message and "keyword" in error.details[0]["message"]


@pytest.mark.parametrize("name", ["__builtins__", "__x", "1x", "a-b", "é", "a b", ""])
def test_variable_names_are_identifiers(name):
    error = refused({"code": "x", "variables": {name: 1}})
    assert error.status == 400 and "invalid variable name" in error.message


def test_soft_keywords_are_plain_names():
    assert parse({"code": "x", "variables": {"match": 1, "type": 2, "case": 3, "_": 4}}).variables["type"] == 2


# ---- JSON: figures --------------------------------------------------------------------------------

FIGURE = {"data": [{"type": "bar", "y": [1, 3, 2]}], "layout": {"title": {"text": "t"}}}


def test_a_figure_or_a_list_of_them_makes_a_figure_job():
    one = parse({"figure": FIGURE, "formats": ["png"]})
    assert one.figures == [FIGURE] and one.code == "" and one.formats == ["png"]
    assert parse({"figure": [FIGURE, {"data": []}]}).figures == [FIGURE, {"data": []}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "give code or figure"),
        ({"code": None, "figure": None}, "give code or figure"),
        ({"code": "x", "figure": FIGURE}, "give code or figure"),
        ({"figure": FIGURE, "files": {"a": {"text": "x"}}}, "files and variables need code"),
        ({"figure": FIGURE, "variables": {"a": 1}}, "files and variables need code"),
        ({"figure": []}, "no figure"),
        ({"figure": [FIGURE] * 21}, "too many figures"),
        ({"figure": "{}"}, "invalid job request"),
        ({"figure": [1]}, "invalid job request"),
    ],
)
def test_figure_jobs_are_checked(body, message):
    error = refused(body)
    assert (error.status, error.message) == (400, message)


def test_figure_sizes_and_depth_are_limited():
    small = Settings(_env_file=None, max_figure_bytes=100, max_input_bytes=150, max_figure_depth=8)
    big = {"data": [{"y": list(range(40))}]}
    error = refused({"figure": big}, small)
    assert error.status == 413 and "PLOTFARM_MAX_FIGURE_BYTES" in error.message and "100" in error.message
    two = {"data": [{"y": list(range(15))}]}
    total = refused({"figure": [two, two, two]}, small)
    assert total.status == 413 and "PLOTFARM_MAX_INPUT_BYTES" in total.message
    deep: dict = {"data": []}
    node = deep
    for _ in range(8):
        node["a"] = {}
        node = node["a"]
    depth = refused({"figure": deep}, small)
    assert depth.status == 400 and "PLOTFARM_MAX_FIGURE_DEPTH" in str(depth.details)


def test_the_body_limit_admits_the_largest_valid_job():
    """Code escaped at worst, every input byte as base64, every file with the longest name escaped at worst."""
    limits = Settings(_env_file=None, max_input_bytes=100_000, max_input_files=100, max_code_bytes=1000)
    names = [f"{i:03d}" + "é" * 126 for i in range(100)]  # 255 bytes of UTF-8 each, 6 bytes a character escaped
    body = {
        "code": "\x01" * 1000,  # six bytes each, escaped
        "files": {name: {"base64": base64.b64encode(b"\xff" * 1000).decode()} for name in names},
        "variables": {},
        "width": 5000,
        "height": 5000,
        "timeout_s": 10,
        "formats": ["svg", "png", "jpeg", "webp", "pdf", "json", "html"],
        "scale": 10,
    }
    raw = json.dumps(body).encode()  # ensure_ascii: the names escaped too
    assert len(raw) <= request_body_limit(limits)
    parse_job_request(raw, limits)
    figure = {"data": [{"y": "x" * 99_000}]}
    assert len(json.dumps({"figure": figure}).encode()) <= request_body_limit(limits)


# ---- over HTTP: JSON and multipart ------------------------------------------------------------------


@pytest.fixture
async def gateway():
    clients = []

    async def make(**fields):
        settings = Settings(_env_file=None, public_gateway_url=GW, public_viewer_url="http://viewer", **fields)
        broker = FakeBroker()
        client = TestClient(TestServer(create_app(settings, broker, JobIndex(10**6), FakeFollower())))
        await client.start_server()
        clients.append(client)
        return client, broker

    yield make
    for client in clients:
        await client.close()


async def error_of(response, status: int) -> str:
    assert response.status == status, (response.status, await response.text())
    assert response.content_type == "application/json"
    return (await response.json())["error"]


BOUNDARY = "plotfarm-test-boundary"
FORM = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def form(*parts) -> bytes:
    """A form as a browser or curl writes it (aiohttp's FormData would percent-encode a filename's `/`)."""
    body = b""
    for name, value, *rest in parts:
        filename, content_type = (rest + [None, None])[:2]
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        raw = value.encode() if isinstance(value, str) else value
        body += head.encode() + b"\r\n" + raw + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def test_a_json_job_with_files_and_variables_reaches_the_broker(gateway):
    client, broker = await gateway()
    body = {"code": "print(n)", "files": {"a.csv": {"text": "x\n1\n"}}, "variables": {"n": 3}}
    assert (await client.post("/api/jobs", json=body)).status == 202
    job = broker.jobs[-1]
    assert base64.b64decode(job.files["a.csv"]) == b"x\n1\n" and job.variables == {"n": 3}


async def test_a_multipart_job_with_code_and_files(gateway):
    client, broker = await gateway()
    raw = bytes(range(256)) * 10
    data = form(
        ("code", "print(open('sales.csv').read())"),
        ("files", b"a,b\n1,2\n", "sales.csv", "text/csv"),
        ("anything", raw, "blob.bin", "application/octet-stream"),
    )
    response = await client.post("/api/jobs", data=data, headers=FORM)
    assert response.status == 202, await response.text()
    job = broker.jobs[-1]
    assert job.code == "print(open('sales.csv').read())"
    assert base64.b64decode(job.files["sales.csv"]) == b"a,b\n1,2\n" and base64.b64decode(job.files["blob.bin"]) == raw


async def test_a_multipart_job_part_is_the_json_body(gateway):
    client, broker = await gateway()
    job_part = json.dumps({"formats": ["png"], "variables": {"k": [1]}, "files": {"b.txt": {"text": "B"}}})
    data = form(("job", job_part, None, "application/json"), ("code", "x"), ("f", b"A", "a.txt"))
    assert (await client.post("/api/jobs", data=data, headers=FORM)).status == 202
    job = broker.jobs[-1]
    assert job.formats == ["png"] and job.variables == {"k": [1]} and set(job.files) == {"a.txt", "b.txt"}
    whole = form(("job", json.dumps({"code": "y", "width": 300}), None, "application/json"), ("f", b"A", "a.txt"))
    assert (await client.post("/api/jobs", data=whole, headers=FORM)).status == 202
    assert broker.jobs[-1].code == "y" and broker.jobs[-1].width == 300


@pytest.mark.parametrize(
    ("parts", "status", "words"),
    [
        ([("code", "x"), ("f", b"a", "../x")], 400, "invalid file name '../x'"),
        ([("code", "x"), ("f", b"a", "a/b")], 400, "invalid file name 'a/b'"),
        ([("code", "x"), ("f", b"a", "..")], 400, "invalid file name '..'"),
        ([("code", "x"), ("f", b"a", "a.csv"), ("g", b"b", "a.csv")], 400, "sent twice"),
        ([("job", '{"code": "x", "files": {"a": {"text": ""}}}'), ("f", b"a", "a")], 400, "sent twice"),
        ([("code", "x"), ("code", "y")], 400, "two code parts"),
        ([("code", "x"), ("job", '{"code": "y"}')], 400, "code came twice"),
        ([("job", "[1]")], 400, "JSON object"),
        ([("job", "{")], 400, "not valid JSON"),
        ([("code", "x"), ("other", "y")], 400, "neither code, job, nor a file"),
        ([("f", b"a", "a.csv")], 400, "give code or figure"),
        ([("code", b"\xff")], 400, "not UTF-8"),
        ([("code", " ")], 400, "code is empty"),
        ([("code", "x" * 101)], 413, "PLOTFARM_MAX_CODE_BYTES"),
        ([("code", "x"), ("f", b"a" * 600, "a"), ("g", b"b" * 401, "b")], 413, "PLOTFARM_MAX_INPUT_BYTES"),
        ([("code", "x"), *[(f"f{i}", b"", f"f{i}") for i in range(4)]], 400, "too many files"),
        ([("code", "x"), *[(f"f{i}", b"", f"f{i}") for i in range(6)]], 413, "PLOTFARM_MAX_INPUT_FILES"),
        (
            [("code", "x"), ("f", b"a", "a"), ("job", '{"variables": {"v": "' + "x" * 999 + '"}}')],
            413,
            "PLOTFARM_MAX_INPUT_BYTES",
        ),
    ],
)
async def test_bad_forms_are_clear_4xx(gateway, parts, status, words):
    client, broker = await gateway(**SMALL)
    message = await error_of(await client.post("/api/jobs", headers=FORM, data=form(*parts)), status)
    assert words in message
    assert not broker.jobs


async def test_an_empty_file_input_is_ignored(gateway):
    client, broker = await gateway()
    assert (await client.post("/api/jobs", headers=FORM, data=form(("code", "x"), ("f", b"", "")))).status == 202
    assert broker.jobs[-1].files == {}


async def test_a_form_is_read_as_a_stream_and_cut_at_the_limit(gateway):
    """Sent chunked (no Content-Length), a form bigger than the body limit is refused once past it."""
    client, broker = await gateway(**SMALL)
    limit = request_body_limit(Settings(_env_file=None, **SMALL))

    async def chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="code"\r\n\r\nx\r\n'
        yield b'--b\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n'
        for _ in range(limit // 1000 + 2):
            yield b"a" * 1000
        yield b"\r\n--b--\r\n"

    response = await client.post(
        "/api/jobs", data=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert "PLOTFARM_MAX_INPUT_BYTES" in await error_of(response, 413)
    declared = await client.post(
        "/api/jobs",
        data=b"x" * 10,
        headers={"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(limit + 1)},
    )
    assert declared.status == 413 or declared.status == 400  # aiohttp may refuse a lying Content-Length first
    assert not broker.jobs


@pytest.mark.parametrize(
    "body",
    [
        b"not a form",
        b"--b\r\n\r\n",
        b'--b\r\nContent-Disposition: form-data; name="code"\r\n\r\nx',
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="a\x00b"\r\n\r\nx\r\n--b--\r\n',
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="a\nb"\r\n\r\nx\r\n--b--\r\n',
        b"--b\r\n" + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\nx\r\n--b--\r\n",
        b'--b\r\nContent-Disposition: form-data; name="code"\r\nContent-Encoding: gzip\r\n\r\nx\r\n--b--\r\n',
        b'--b\r\nContent-Type: multipart/mixed; boundary=c\r\nContent-Disposition: form-data; name="x"\r\n\r\n'
        b"--c\r\n\r\nx\r\n--c--\r\n--b--\r\n",
    ],
)
async def test_malformed_forms_are_400_never_500(gateway, body):
    client, broker = await gateway()
    response = await client.post("/api/jobs", data=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert 400 <= response.status < 500, (response.status, await response.text())
    assert response.content_type == "application/json"
    no_boundary = await client.post("/api/jobs", data=b"x", headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status == 400 and no_boundary.content_type == "application/json"
    assert not broker.jobs


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": GW},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://gw.example.evil.example"},
        {"Origin": "http://gw.example:8080"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
    ],
)
async def test_a_cross_site_form_is_refused_before_it_is_read(gateway, headers):
    client, broker = await gateway()
    response = await client.post(
        "/api/jobs", data=form(("code", "x"), ("f", b"a", "a.csv")), headers={**FORM, **headers}
    )
    message = await error_of(response, 403)
    assert "another site" in message and "application/json" in message
    assert not broker.jobs


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sec-Fetch-Site": "same-origin", "Origin": GW},
        {"Sec-Fetch-Site": "none"},
        {"Origin": GW + "/"},
        {"Origin": "HTTP://GW.EXAMPLE:80"},
    ],
)
async def test_a_form_from_a_program_or_the_gateways_own_page_is_taken(gateway, headers):
    client, broker = await gateway()
    response = await client.post("/api/jobs", data=form(("code", "x")), headers={**FORM, **headers})
    assert response.status == 202, await response.text()
    assert len(broker.jobs) == 1


async def test_the_gateway_own_host_counts_as_its_origin(gateway):
    client, _ = await gateway()
    origin = f"http://{client.host}:{client.port}"
    response = await client.post("/api/jobs", data=form(("code", "x")), headers={**FORM, "Origin": origin})
    assert response.status == 202, await response.text()


async def test_json_is_taken_cross_site_as_before(gateway):
    """A JSON body needs a CORS preflight a browser never gets here, so it is not origin-checked."""
    client, _ = await gateway()
    response = await client.post("/api/jobs", json={"code": "x"}, headers={"Origin": "https://other.example"})
    assert response.status == 202


async def test_the_415_names_both_media_types(gateway):
    client, _ = await gateway()
    response = await client.post(
        "/api/jobs", data=b"code=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert "multipart/form-data" in await error_of(response, 415)
    assert response.headers["Accept-Post"] == "application/json, multipart/form-data"


async def test_a_json_body_over_the_limit_is_413_with_the_limit_named(gateway):
    client, _ = await gateway(**SMALL)
    limit = request_body_limit(Settings(_env_file=None, **SMALL))
    body = json.dumps({"code": "x", "files": {"a": {"text": "a" * limit}}})
    message = await error_of(
        await client.post("/api/jobs", data=body, headers={"Content-Type": "application/json"}), 413
    )
    assert str(limit) in message and "PLOTFARM_MAX_INPUT_BYTES" in message
