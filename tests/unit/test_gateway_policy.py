"""One way to read the gateway's answers and wait it out, for client.py and the MCP service."""

import json
import subprocess
import sys

import pytest

import client
from services.mcp import tool as mcp_tool
from shared.gateway_policy import (
    Busy,
    GatewayError,
    Patience,
    Refused,
    Resubmissions,
    Unreachable,
    error_for,
    retry_after_seconds,
)
from shared.settings import PROJECT_ROOT


def test_retry_after_parses_seconds_and_dates():
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(None) == 1.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") == 1.0


def test_answers_become_busy_refused_or_a_plain_error():
    busy = error_for(429, b'{"error": "too many jobs"}', "Too Many Requests", "7")
    assert isinstance(busy, Busy) and busy.retry_after == 7.0 and busy.message == "too many jobs"
    assert isinstance(error_for(503, b"{}", "Service Unavailable"), Busy)
    details = [{"field": "width", "message": "too small"}]
    refused = error_for(400, json.dumps({"error": "invalid job request", "details": details}).encode())
    assert isinstance(refused, Refused) and refused.describe() == "invalid job request\n  width: too small"
    broken = error_for(500, b'{"error": "a bug"}')
    assert type(broken) is GatewayError and broken.message == "the gateway answered 500: a bug"
    assert (
        error_for(502, b"<html><h1>502</h1></html>", "Bad Gateway").message == "the gateway answered 502: Bad Gateway"
    )
    assert error_for(504, b"upstream timed out\n", "").message == "the gateway answered 504: upstream timed out"
    assert error_for(502, b"", "").message == "the gateway answered 502: HTTP 502"


def test_a_submission_is_sent_again_only_when_busy_or_nothing_was_sent():
    patience = Patience(busy_retries=2, connect_retries=1, max_wait_s=7)
    busy = Busy("busy", 429, retry_after=100)
    retries = Resubmissions(patience)
    assert [retries.wait_after(busy) for _ in range(3)] == [7, 7, None]
    refused_connection = Unreachable("connection refused", nothing_sent=True)
    assert [retries.wait_after(refused_connection) for _ in range(2)] == [1.0, None]  # counted apart from busy
    assert Resubmissions(patience).wait_after(Unreachable("timed out")) is None  # it may have arrived
    assert Resubmissions(patience).wait_after(Refused("bad", 400)) is None
    forever = Resubmissions(Patience(busy_retries=None, jitter_s=0.25))
    assert all(1.0 <= forever.wait_after(Busy("busy", 503)) <= 1.25 for _ in range(1000))


def test_a_long_poll_is_repeated_through_a_passing_outage_until_the_deadline():
    patience = Patience(max_wait_s=10)
    assert patience.before_polling_again(Unreachable("away"), remaining_s=60) == 1.0
    assert patience.before_polling_again(GatewayError("restarting", 503, retry_after=30), remaining_s=60) == 10
    assert patience.before_polling_again(GatewayError("proxy", 502, retry_after=5), remaining_s=2) == 2
    assert patience.before_polling_again(Unreachable("away"), remaining_s=0) is None
    assert patience.before_polling_again(GatewayError("a bug", 500), remaining_s=60) is None
    assert patience.before_polling_again(Refused("no such job", 404), remaining_s=60) is None
    assert Patience(poll_until_deadline=False).before_polling_again(Unreachable("away"), remaining_s=60) is None


def test_client_and_mcp_service_share_the_policy():
    assert client.GatewayError is mcp_tool.GatewayError is GatewayError
    assert client.Busy is mcp_tool.Busy and client.Refused is mcp_tool.Refused


CLIENT_WITHOUT_THE_VENV = """
import sys
sys.argv = ["client.py", "--gateway", "http://127.0.0.1:1", "--code", "x"]
import client
import shared.gateway_policy
assert client.Unreachable is shared.gateway_policy.Unreachable
sys.exit(client.main())
"""


def test_client_and_its_policy_run_on_the_standard_library_alone():
    """As ``python3 client.py`` from a checkout without the venv: no site-packages (-S), no PYTHON* variables (-E)."""
    run = subprocess.run(
        [sys.executable, "-S", "-E", "-c", CLIENT_WITHOUT_THE_VENV],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert run.returncode == client.EXIT_UNAVAILABLE, run.stderr
    assert "cannot reach the gateway" in run.stderr


@pytest.mark.parametrize("status, code", [(400, client.EXIT_REFUSED), (429, client.EXIT_UNAVAILABLE)])
def test_client_exit_codes_follow_the_policy(status, code):
    assert client.exit_code_for(error_for(status, b"{}")) == code
