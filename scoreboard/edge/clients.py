"""Who the client is: its IP address, through trusted proxies.

The peer address is the client, unless the peer is a trusted proxy (an address or a
CIDR range in `server.trusted_proxies`). Then `X-Forwarded-For` is read from the
right, the end the proxies themselves appended, skipping every trusted hop: the first
untrusted one is the client. Reading it from the left would believe whatever a client
sent in its own `X-Forwarded-For`, and let one address pose as many (and escape the
per-address limits). A header that names no valid address leaves the peer.

Every per-address rule (rate limits, connection caps, the access log) asks this one
class, on the HTTP and the WebSocket port alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    def __init__(self, trusted: Sequence[str]) -> None:
        self._exact = frozenset(t for t in trusted if "/" not in t)
        self._networks: list[Network] = [
            ipaddress.ip_network(t, strict=False) for t in trusted if "/" in t
        ]
        self.enabled = bool(self._exact or self._networks)

    def trusted(self, peer: str) -> bool:
        if peer in self._exact:
            return True
        if not self._networks:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in self._networks)

    def resolve(self, peer: str, forwarded: str | None) -> str:
        """The client's address, given the peer's and the `X-Forwarded-For` header."""
        if not self.enabled or not forwarded or not self.trusted(peer):
            return peer
        client = peer
        for hop in reversed(forwarded.split(",")):
            hop = hop.strip()
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                break  # not an address: trust nothing further left
            client = hop
            if not self.trusted(hop):
                break
        return client

    def of(self, request: web.Request) -> str:
        if not self.enabled:  # no trusted proxy: the peer, whatever the headers say
            return request.remote or "?"
        return self.resolve(request.remote or "?", request.headers.get("X-Forwarded-For"))
