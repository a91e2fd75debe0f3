"""The gateway's request rules, without a broker."""

import json

import pytest

from services.gateway.validation import InvalidRequest, parse_job_request, request_body_limit
from shared.settings import Settings

SETTINGS = Settings(_env_file=None)


def parse(body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_job_request(raw, SETTINGS)


def test_defaults_fill_in_size_and_timeout():
    job = parse({"code": "print(1)"})
    assert (job.width, job.height, job.timeout_s) == (SETTINGS.default_width, SETTINGS.default_height, 10.0)
    assert len(job.job_id) == 32 and job.submitted_at.tzinfo is not None


def test_explicit_fields_are_kept():
    job = parse({"code": "x", "width": 300, "height": 200, "timeout_s": 2.5})
    assert (job.width, job.height, job.timeout_s) == (300, 200, 2.5)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"\xff\xfe", 400, None),
        (b"null", 400, None),
        ({}, 400, "code"),
        ({"code": None}, 400, "code"),
        ({"code": ["print(1)"]}, 400, "code"),
        ({"code": "x", "width": 10}, 400, "width"),
        ({"code": "x", "height": 1.5}, 400, "height"),
        ({"code": "x", "timeout_s": "2"}, 400, "timeout_s"),
        ({"code": "x", "timeout_s": -1}, 400, "timeout_s"),
        ({"code": "x", "timeout_s": 61}, 400, "timeout_s"),
        ({"code": "x", "unexpected": 1}, 400, "unexpected"),
        ({"code": "\t \n"}, 400, "code"),
    ],
)
def test_invalid_requests(body, status, field):
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    assert caught.value.status == status
    if field:
        assert field in json.dumps(caught.value.body())


def test_code_limit_counts_utf8_bytes():
    limit = SETTINGS.max_code_bytes
    parse({"code": "a" * limit})
    with pytest.raises(InvalidRequest) as caught:
        parse({"code": "é" * (limit // 2 + 1)})  # fewer characters than the limit, more bytes
    assert caught.value.status == 413


def test_body_limit_leaves_room_for_escaped_code():
    assert request_body_limit(SETTINGS) >= SETTINGS.max_code_bytes * 6
