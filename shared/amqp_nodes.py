"""Which RabbitMQ node to connect to, and which next: failover for every connection plotfarm opens.

Why this module exists: aio-pika 10.x connects to exactly one URL, and its
robust connection reconnects to that same URL forever (a multi-host
connection class was proposed upstream and not merged). On a RabbitMQ
cluster the node a service was connected to is often the one that just
died, so reconnecting to it means waiting for it to come back while two
healthy nodes hold the replicated queues and the stream. With
``PLOTFARM_AMQP_URLS`` naming every node, plotfarm does this instead:

* **connecting** (:func:`connect`, :func:`connect_robust`) tries the nodes
  in turn, starting with the one that last worked in this process, and
  takes the first that answers; a dead node refuses at once, a hung one
  costs the connect timeout. Only when every node failed does the attempt
  fail (:class:`NoNodeAnswered`, naming each node's cause), and the caller's
  retry (shared/retry.py) decides how long to keep trying;
* **a robust connection** (the Broker's) is pointed at the next node the
  moment it is lost, before aio-pika reconnects, and at the one after that
  whenever a reconnect attempt fails (or hangs for ``switch_after_s``);
  aio-pika then restores its channels, topology and consumers on whichever
  node answered (:class:`RobustFailover`);
* **a plain connection** (the events follower's, which resumes its stream
  consumer itself) marks its node as the one to avoid first when it closes,
  so the follower's next :func:`connect` starts at the following node.

Every connection made and every switch is logged with the node (host, port,
vhost; never the password). With one URL nothing changes: the same URL is
used and its own error raised, as before this module.

One :class:`Nodes` ring is shared per process and URL list, so a gateway's
publisher and follower agree on which node is alive.
"""

import asyncio
import contextlib

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from yarl import URL

from shared.settings import Settings

log = structlog.get_logger(__name__)


class NoNodeAnswered(ConnectionError):
    """No RabbitMQ node in the list could be connected to; the message names each node's cause."""


def node_urls(settings: Settings) -> list[str]:
    """The nodes to use, in order: ``amqp_urls`` (comma-separated) when set, else just ``amqp_url``."""
    urls = [url.strip() for url in settings.amqp_urls.split(",") if url.strip()]
    return urls or [settings.amqp_url]


def describe(url: str | URL) -> str:
    """A node as logs may show it: ``host:port/vhost``, never the credentials."""
    parsed = URL(str(url))
    return f"{parsed.host}:{parsed.port or 5672}{parsed.path or '/'}"


class Nodes:
    """A ring of node URLs and the one to try first (the last that worked, or the one after a lost one)."""

    def __init__(self, urls: list[str]):
        if not urls:
            raise ValueError("at least one RabbitMQ URL is needed")
        self.urls = list(urls)
        self._first = 0

    def in_turn(self) -> list[str]:
        """Every node once, starting with the one to try first."""
        return self.urls[self._first :] + self.urls[: self._first]

    def after(self, url: str) -> str:
        """The node following ``url`` in the ring (``url`` itself when it is the only one)."""
        return self.urls[(self._index(url) + 1) % len(self.urls)]

    def worked(self, url: str) -> None:
        """``url`` took a connection: try it first next time."""
        self._first = self._index(url)

    def lost(self, url: str) -> str:
        """A connection to ``url`` was lost: unless another node has been preferred since, prefer the next one.

        Returns the node to try first now.
        """
        if self.urls[self._first] == url:
            self._first = (self._first + 1) % len(self.urls)
        return self.urls[self._first]

    def _index(self, url: str) -> int:
        try:
            return self.urls.index(url)
        except ValueError:
            target = URL(url)
            return next((n for n, known in enumerate(self.urls) if URL(known) == target), 0)


_RINGS: dict[tuple[str, ...], Nodes] = {}


def nodes_for(settings: Settings) -> Nodes:
    """This process's ring for the settings' node list (one per list, shared by every connection)."""
    urls = tuple(node_urls(settings))
    if urls not in _RINGS:
        _RINGS[urls] = Nodes(list(urls))
    return _RINGS[urls]


async def _first_answering(nodes: Nodes, open_one) -> tuple[AbstractConnection, str]:
    """Open a connection to the first node in turn that answers; NoNodeAnswered when none does."""
    causes = []
    for url in nodes.in_turn():
        try:
            connection = await open_one(url)
        except Exception as exc:  # any failure to connect: try the next node
            if len(nodes.urls) == 1:
                raise  # one node: its own error, exactly as without a list
            causes.append(f"{describe(url)}: {exc!r}")
            log.warning("RabbitMQ node did not answer, trying the next", node=describe(url), cause=repr(exc)[:300])
            continue
        nodes.worked(url)
        log.info("connected to RabbitMQ node", node=describe(url), nodes=len(nodes.urls))
        return connection, url
    raise NoNodeAnswered("no RabbitMQ node answered: " + "; ".join(causes))


async def connect(settings: Settings, *, timeout: float = 10, **kwargs) -> AbstractConnection:
    """A plain connection to the first node that answers; when it closes, its node is no longer tried first."""
    nodes = nodes_for(settings)
    connection, url = await _first_answering(nodes, lambda url: aio_pika.connect(url, timeout=timeout, **kwargs))
    connection.close_callbacks.add(lambda *_: nodes.lost(url))
    return connection


class RobustFailover:
    """Keeps an aio-pika robust connection on a live node: on loss, repoint it at the next one.

    aio-pika's robust connection reconnects to ``connection.url`` every
    ``reconnect_interval``; this sets that URL to the next node as soon as
    the connection is lost, and to the one after that when an attempt fails
    (aio-pika reports those through ``close_callbacks`` too) or hangs for
    ``switch_after_s``. aio-pika then restores channels, topology and
    consumers as usual. ``disconnected_s`` in the reconnect log counts from
    the loss, not from the last failed attempt.
    """

    def __init__(self, connection: AbstractRobustConnection, nodes: Nodes, url: str, *, switch_after_s: float):
        self.connection = connection
        self.nodes = nodes
        self.url = url
        self.switch_after_s = switch_after_s
        self.lost_at: float | None = None
        self._stopped = False
        self._moving: asyncio.Task | None = None
        self._moves = 0
        connection.close_callbacks.add(self._on_close)
        connection.reconnect_callbacks.add(self._on_reconnect)

    def _on_close(self, _connection, cause=None) -> None:
        """The connection was lost, or (aio-pika calls this too) a reconnect attempt failed: on to the next node."""
        if self._stopped or self.connection.close_called:
            return  # closed on purpose
        failed = self.url
        self._point_at(self.nodes.lost(failed))
        if self.lost_at is None:
            self.lost_at = asyncio.get_running_loop().time()
            event = "lost the connection to RabbitMQ node, reconnecting"
        elif len(self.nodes.urls) > 1:
            event = "RabbitMQ node did not answer, trying the next"
        else:
            event = "RabbitMQ did not answer, trying again"
        log.warning(event, node=describe(failed), next=describe(self.url), cause=repr(cause)[:300])
        if len(self.nodes.urls) > 1 and (self._moving is None or self._moving.done()):
            self._moving = asyncio.create_task(self._keep_moving(), name="amqp-failover")

    def _on_reconnect(self, *_) -> None:
        self.nodes.worked(self.url)
        outage = asyncio.get_running_loop().time() - self.lost_at if self.lost_at is not None else None
        self.lost_at = None
        log.info(
            "reconnected to RabbitMQ node",
            node=describe(self.url),
            disconnected_s=round(outage, 2) if outage is not None else None,
        )

    async def _keep_moving(self) -> None:
        """While no node takes the connection, move on to the next every ``switch_after_s`` without a failed attempt.

        A refused attempt moves on by itself (:meth:`_on_close`); this covers
        an attempt that hangs on a node that neither answers nor refuses.
        """
        while not self._stopped and not self.connection.close_called:
            moves = self._moves
            try:
                await asyncio.wait_for(self.connection.connected.wait(), self.switch_after_s)
                return
            except TimeoutError:
                if self._moves != moves:
                    continue
                following = self.nodes.after(self.url)
                log.warning(
                    "RabbitMQ node still not answering, trying the next",
                    node=describe(self.url),
                    next=describe(following),
                )
                self._point_at(following)

    def _point_at(self, url: str) -> None:
        self._moves += 1
        self.url = url
        self.connection.url = URL(url)

    async def stop(self) -> None:
        """Stop moving the connection (before closing it on purpose)."""
        self._stopped = True
        if self._moving is not None:
            self._moving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._moving


async def connect_robust(
    settings: Settings, *, timeout: float = 10, reconnect_interval: float = 1, **kwargs
) -> tuple[AbstractRobustConnection, RobustFailover]:
    """A robust connection to the first node that answers, kept on a live node by a :class:`RobustFailover`.

    The failover switches to the next node after about two reconnect attempts
    on one node without success.
    """
    nodes = nodes_for(settings)
    connection, url = await _first_answering(
        nodes,
        lambda url: aio_pika.connect_robust(url, timeout=timeout, reconnect_interval=reconnect_interval, **kwargs),
    )
    return connection, RobustFailover(connection, nodes, url, switch_after_s=max(2 * reconnect_interval, 1.0))
