"""The client's address and scheme come from X-Forwarded-* only when a trusted proxy sent them."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_app
from shared.jobs import JobIndex
from shared.proxies import TrustedProxies
from shared.settings import Settings
from tests.unit.test_gateway_app import FakeBroker, FakeFollower

PROXIES = TrustedProxies("10.0.0.0/8, 192.168.1.7,fd00::/8")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "proto", "client", "scheme"),
    [
        # an untrusted peer: whatever it says is ignored
        ("203.0.113.9", ["198.51.100.1"], ["https"], "203.0.113.9", None),
        ("11.0.0.1", ["198.51.100.1"], ["https"], "11.0.0.1", None),
        # a trusted proxy: the right-most address it did not add itself
        ("10.1.2.3", ["198.51.100.1"], ["https"], "198.51.100.1", "https"),
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1"], ["https"], "198.51.100.1", "https"),  # the left one is the client's say
        ("10.1.2.3", ["6.6.6.6", "198.51.100.1"], [], "198.51.100.1", None),  # two headers are one list
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1, 192.168.1.7"], ["https, http"], "198.51.100.1", "https"),
        ("10.1.2.3", ["198.51.100.1,10.9.9.9"], ["HTTPS"], "198.51.100.1", "https"),  # a chain of trusted proxies
        ("10.1.2.3", ["10.0.0.5"], ["http"], "10.0.0.5", "http"),  # only trusted hops: the farthest
        ("10.1.2.3", [], ["https"], "10.1.2.3", "https"),
        # what a proxy may write: ports, brackets, IPv6
        ("10.1.2.3", ["198.51.100.1:4711"], [], "198.51.100.1", None),
        ("10.1.2.3", ["[2001:db8::1]:4711"], [], "2001:db8::1", None),
        ("10.1.2.3", ["2001:db8::1"], [], "2001:db8::1", None),
        ("fd00::1", ["198.51.100.1"], [], "198.51.100.1", None),
        ("::ffff:10.1.2.3", ["198.51.100.1"], [], "198.51.100.1", None),  # IPv4 mapped into IPv6
        # what nothing trustworthy writes: the last address that can be trusted stands
        ("10.1.2.3", ["unknown"], ["javascript"], "10.1.2.3", None),
        ("10.1.2.3", ["198.51.100.1, garbage, 10.0.0.2"], ["ftp"], "10.0.0.2", None),
        ("10.1.2.3", ["", " , "], [""], "10.1.2.3", None),
        ("10.1.2.3", ["1" * 5000], [], "10.1.2.3", None),
    ],
)
def test_client_and_scheme(peer, forwarded_for, proto, client, scheme):
    assert PROXIES.client(peer, forwarded_for, proto) == (client, scheme)


def test_nothing_is_trusted_by_default_and_bad_entries_are_refused():
    assert TrustedProxies("").client("127.0.0.1", ["198.51.100.1"], ["https"]) == ("127.0.0.1", None)
    assert not TrustedProxies("").trusts("127.0.0.1")
    assert TrustedProxies("127.0.0.1").trusts("127.0.0.1") and not TrustedProxies("127.0.0.1").trusts(None)
    with pytest.raises(ValueError, match="not-an-address"):
        TrustedProxies("10.0.0.0/8,not-an-address")


async def _gateway(**settings) -> TestClient:
    app = create_app(
        Settings(_env_file=None, rate_limit_per_minute=1, rate_limit_burst=1, **settings),
        FakeBroker(),
        JobIndex(10**6),
        FakeFollower(),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_anonymous_callers_behind_a_trusted_proxy_each_have_their_own_rate_limit():
    client = await _gateway(trusted_proxies="127.0.0.1")  # the test client is the proxy
    try:

        async def submit(address: str) -> int:
            response = await client.post("/api/jobs", json={"code": "x"}, headers={"X-Forwarded-For": address})
            return response.status

        assert await submit("198.51.100.1") == 202
        assert await submit("198.51.100.1") == 429
        assert await submit("198.51.100.2") == 202  # another caller behind the same proxy
        assert await submit("6.6.6.6, 198.51.100.2") == 429  # what the caller wrote itself counts for nothing
    finally:
        await client.close()


async def test_an_untrusted_peer_cannot_choose_its_address():
    client = await _gateway()
    try:
        statuses = []
        for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            response = await client.post("/api/jobs", json={"code": "x"}, headers={"X-Forwarded-For": address})
            statuses.append(response.status)
        assert statuses == [202, 429, 429]
    finally:
        await client.close()
