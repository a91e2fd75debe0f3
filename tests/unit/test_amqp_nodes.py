"""Failover between RabbitMQ nodes (shared/amqp_nodes.py), without a broker: which node is tried when."""

import asyncio

import pytest
from yarl import URL

from shared import amqp_nodes
from shared.amqp_nodes import Nodes, NoNodeAnswered, RobustFailover
from shared.settings import Settings

A, B, C = (f"amqp://guest:secret@127.0.0.1:{port}/" for port in (5701, 5702, 5703))


def settings(**fields) -> Settings:
    return Settings(_env_file=None, **fields)


def test_the_node_list_is_amqp_urls_or_else_amqp_url():
    assert amqp_nodes.node_urls(settings(amqp_url=A)) == [A]
    assert amqp_nodes.node_urls(settings(amqp_url=A, amqp_urls=f" {B}, {C} ,")) == [B, C]


def test_a_node_is_described_without_its_credentials():
    assert amqp_nodes.describe(A) == "127.0.0.1:5701/"
    assert "secret" not in amqp_nodes.describe("amqp://u:secret@rabbit-2.internal/plotfarm")


def test_the_ring_starts_at_the_last_node_that_worked_and_moves_past_a_lost_one():
    nodes = Nodes([A, B, C])
    assert nodes.in_turn() == [A, B, C]
    nodes.worked(B)
    assert nodes.in_turn() == [B, C, A]
    assert nodes.lost(B) == C
    assert nodes.lost(B) == C  # a second report of the same loss does not skip a node
    assert nodes.after(C) == A
    assert Nodes([A]).lost(A) == A


class FakeCallbacks(set):
    def __call__(self, *args):
        for callback in list(self):
            callback(None, *args)


class FakeConnection:
    def __init__(self, url):
        self.url = URL(url)
        self.close_callbacks = FakeCallbacks()
        self.reconnect_callbacks = FakeCallbacks()
        self.connected = asyncio.Event()
        self.connected.set()
        self.close_called = False


@pytest.fixture
def fake_connect(monkeypatch):
    """aio_pika.connect/connect_robust that refuse the ports in ``down`` and record every attempt."""
    attempts, down = [], set()

    async def connect(url, **_):
        attempts.append(url)
        if url in down:
            raise ConnectionRefusedError(f"refused {URL(url).port}")
        return FakeConnection(url)

    monkeypatch.setattr(amqp_nodes.aio_pika, "connect", connect)
    monkeypatch.setattr(amqp_nodes.aio_pika, "connect_robust", connect)
    monkeypatch.setattr(amqp_nodes, "_RINGS", {})
    return attempts, down


async def test_connect_takes_the_first_node_that_answers_and_avoids_a_lost_one_next(fake_connect):
    attempts, down = fake_connect
    cluster = settings(amqp_urls=",".join((A, B, C)))
    down.add(A)
    connection = await amqp_nodes.connect(cluster)
    assert attempts == [A, B] and connection.url == URL(B)
    connection.close_callbacks(None)  # lost
    attempts.clear()
    await amqp_nodes.connect(cluster)
    assert attempts == [C]


async def test_when_no_node_answers_the_error_names_each_node(fake_connect):
    _, down = fake_connect
    down.update((A, B))
    with pytest.raises(NoNodeAnswered) as error:
        await amqp_nodes.connect(settings(amqp_urls=f"{A},{B}"))
    assert "127.0.0.1:5701/" in str(error.value) and "127.0.0.1:5702/" in str(error.value)
    assert "secret" not in str(error.value)


async def test_one_node_raises_its_own_error_as_before(fake_connect):
    _, down = fake_connect
    down.add(A)
    with pytest.raises(ConnectionRefusedError):
        await amqp_nodes.connect(settings(amqp_url=A))


async def test_a_lost_robust_connection_is_pointed_at_the_next_node_and_moved_on_while_none_answers():
    nodes = Nodes([A, B, C])
    connection = FakeConnection(A)
    failover = RobustFailover(connection, nodes, A, switch_after_s=0.2)
    connection.connected.clear()
    connection.close_callbacks(ConnectionResetError("killed"))
    assert connection.url == URL(B)  # before aio-pika's first reconnect attempt
    # B does not take it in time either: it moves on once switch_after_s has passed. Watched
    # closely rather than slept for a fixed time: on a loaded machine the timer fires late.
    deadline = asyncio.get_running_loop().time() + 10
    while connection.url != URL(C):
        assert asyncio.get_running_loop().time() < deadline, connection.url
        await asyncio.sleep(0.005)
    connection.connected.set()  # C answers
    connection.reconnect_callbacks()
    await asyncio.sleep(0.5)
    assert connection.url == URL(C) and nodes.in_turn()[0] == C  # and it stays there
    await failover.stop()


async def test_closing_on_purpose_moves_nothing():
    nodes = Nodes([A, B])
    connection = FakeConnection(A)
    failover = RobustFailover(connection, nodes, A, switch_after_s=0.05)
    await failover.stop()
    connection.close_callbacks(None)
    assert connection.url == URL(A) and nodes.in_turn()[0] == A


async def test_every_failed_reconnect_attempt_moves_on_and_the_outage_counts_from_the_loss():
    nodes = Nodes([A, B, C])
    connection = FakeConnection(A)
    failover = RobustFailover(connection, nodes, A, switch_after_s=10)
    connection.connected.clear()
    connection.close_callbacks(ConnectionResetError("killed"))
    lost_at = failover.lost_at
    connection.close_callbacks(ConnectionRefusedError("B is down too"))  # aio-pika's failed attempt
    assert connection.url == URL(C) and failover.lost_at == lost_at
    connection.connected.set()
    connection.reconnect_callbacks()
    assert failover.lost_at is None
    await failover.stop()
