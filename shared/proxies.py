"""The client's address and scheme, read from ``X-Forwarded-*`` only when a trusted proxy sent them.

Behind an ingress or load balancer every request comes from the proxy, so
``request.remote`` is the proxy's address: anonymous callers would share one
rate limit, and a viewer behind a TLS-terminating proxy would think every
request came over plain HTTP. The proxy says who the client is in
``X-Forwarded-For`` and how it connected in ``X-Forwarded-Proto``, but anyone
can send those headers, so they count only when the direct peer is one of
``PLOTFARM_TRUSTED_PROXIES`` (IP addresses and CIDR ranges; none by default).

Each proxy appends the address it got the request from to ``X-Forwarded-For``,
so the list reads client-supplied junk first and trustworthy entries last.
The client is the right-most address that is not itself a trusted proxy
(walking left only through trusted ones); an entry that is not an address
stops the walk at the last trustworthy one. ``X-Forwarded-Proto`` is read at
the same hop (a proxy that overwrites it leaves one value, which is used).
Only ``http`` and ``https`` are taken. The standard ``Forwarded`` header
(RFC 7239) is not read: the usual ingresses send the ``X-Forwarded-*`` ones.

Written here rather than taken from ``aiohttp-remotes``: it is this one small
rule, and a new dependency would need its own pins and hashes in requirements/.
:func:`forwarded_middleware` applies it to every request (``request.remote``,
``request.scheme`` and ``request.secure`` then describe the client), so the
code after it needs no change.
"""

import ipaddress

from aiohttp import hdrs, web

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = ("http", "https")


def _address(text: str) -> Address | None:
    """An address as proxies write it: ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:80``."""
    text = text.strip(" \t")
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _values(headers: list[str]) -> list[str]:
    """One list from every instance of a comma-separated header."""
    return [value for header in headers for value in header.split(",")]


class TrustedProxies:
    def __init__(self, spec: str):
        """``spec``: comma-separated IP addresses and CIDR ranges (``10.0.0.0/8, 192.168.1.7``)."""
        self.networks = []
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"PLOTFARM_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR range") from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def trusts(self, peer: str | None) -> bool:
        return bool(self.networks) and peer is not None and self._trusted(_address(peer))

    def client(
        self, peer: str | None, forwarded_for: list[str], forwarded_proto: list[str]
    ) -> tuple[str | None, str | None]:
        """The client's address and scheme (None: the connection's own) for a request from ``peer``."""
        if not self.trusts(peer):
            return peer, None
        client, hop = peer, -1  # hop: the chosen entry's place counted from the right; -1, the peer itself
        for hop_index, entry in enumerate(reversed(_values(forwarded_for))):
            address = _address(entry)
            if address is None:
                break
            client, hop = str(address), hop_index
            if not self._trusted(address):
                break
        protos = _values(forwarded_proto)
        scheme = None
        if protos:
            at = max(hop, 0)
            proto = (protos[-1 - at] if at < len(protos) else protos[0]).strip(" \t").lower()
            scheme = proto if proto in SCHEMES else None
        return client, scheme


def forwarded_middleware(proxies: TrustedProxies):
    """A middleware that makes ``request.remote`` and ``request.scheme`` the client's (see the module)."""

    @web.middleware
    async def from_trusted_proxies(request: web.Request, handler):
        if not proxies.trusts(request.remote):
            return await handler(request)
        remote, scheme = proxies.client(
            request.remote,
            request.headers.getall(hdrs.X_FORWARDED_FOR, []),
            request.headers.getall(hdrs.X_FORWARDED_PROTO, []),
        )
        changes = {}
        if remote != request.remote:
            changes["remote"] = remote
        if scheme is not None and scheme != request.scheme:
            changes["scheme"] = scheme
        return await handler(request.clone(**changes) if changes else request)

    return from_trusted_proxies
