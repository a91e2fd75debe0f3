"""The stand-alone health server (the renderer's): probes and metrics for anyone, /stats for loopback."""

import socket
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from shared.health import serve_health


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _get(app, path: str, peer: str):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 50000) if name == "peername" else default
    request = make_mocked_request("GET", path, app=app, transport=transport)
    match = await app.router.resolve(request)
    return await match.handler(request)


async def _stats() -> dict:
    return {"chromium": {"uid": 10001}, "pool": {"restores": 3}}


@pytest.mark.parametrize("peer", ["10.1.2.3", "192.168.0.9", "2001:db8::1", "::ffff:10.1.2.3", "203.0.113.7"])
async def test_stats_are_for_loopback_only_by_default(peer):
    runner = await serve_health("127.0.0.1", _port(), {"ok": lambda: None}, stats=_stats)
    try:
        refused = await _get(runner.app, "/stats", peer)
        assert refused.status == 403 and b"uid" not in refused.body
        assert b"PLOTFARM_RENDERER_STATS_PUBLIC" in refused.body
        for probe in ("/healthz", "/readyz"):  # kubelet and compose probes come from anywhere
            assert (await _get(runner.app, probe, peer)).status == 200
        for local in ("127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"):
            assert (await _get(runner.app, "/stats", local)).status == 200, local
    finally:
        await runner.cleanup()


async def test_stats_can_be_opened():
    runner = await serve_health("127.0.0.1", _port(), {}, stats=_stats, stats_public=True)
    try:
        assert (await _get(runner.app, "/stats", "10.1.2.3")).status == 200
    finally:
        await runner.cleanup()
