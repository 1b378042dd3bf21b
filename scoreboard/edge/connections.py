"""Fair shares of the process's sockets, on the HTTP and WebSocket ports together.

Every open TCP connection costs a file descriptor, and the process has a fixed number
of them (`RLIMIT_NOFILE`, read once at start-up). `ConnectionBudget` admits a new
connection only while

- the client's address holds fewer than `edge.max_connections_per_ip` connections
  (trusted proxies are exempt: every request behind them arrives through them), and
- the process has descriptors to spare: `edge.reserved_fds` are kept back for the
  listeners, the database, logs and files, and of the rest the last `HEALTH_BAND` are
  open only to trusted proxies and the local host, so a load balancer's or a local
  supervisor's health check still gets through when strangers have taken the rest.

A connection's place is given back when its socket is really gone (the transport's
`connection_lost`), never earlier: a cut-off client that still holds its descriptor
still counts.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

log = logging.getLogger("scoreboard.edge")

HEALTH_BAND = 16
# After a refusal the socket stays half-open this long (seconds), its input discarded:
# closing at once, with the client's bytes unread, would reset the connection and the
# client could lose the answer. The client's own close ends it sooner.
LINGER = 1.0
LOCAL = frozenset({"127.0.0.1", "::1"})
RETRY_AFTER = 5.0

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends RST, drops the queue

PER_IP = "connections_per_ip"
BUDGET = "connection_budget"


def descriptor_limit() -> int:
    """The soft RLIMIT_NOFILE of this process (a large number when unlimited)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


def client_budget(limit: int, reserved: int) -> int:
    """Client connections a limit of `limit` descriptors allows, `reserved` kept back."""
    return max(limit - reserved, 2 * HEALTH_BAND)


@dataclass(eq=False)
class ConnectionBudget:
    total: int  # client connections, both ports
    per_ip: int  # 0: no per-address cap
    exempt: Callable[[str], bool] = lambda _ip: False  # trusted proxies
    open: int = 0
    by_ip: dict[str, int] = field(default_factory=dict)

    def take(self, ip: str) -> str | None:
        """Count a new connection from `ip`; returns why it is refused, or None."""
        exempt = self.exempt(ip)
        limit = self.total if exempt or ip in LOCAL else self.total - HEALTH_BAND
        if self.open >= limit:
            return BUDGET
        held = self.by_ip.get(ip, 0)
        if self.per_ip and held >= self.per_ip and not exempt:
            return PER_IP
        self.by_ip[ip] = held + 1
        self.open += 1
        return None

    def give(self, ip: str) -> None:
        self.open -= 1
        left = self.by_ip[ip] - 1
        if left:
            self.by_ip[ip] = left
        else:
            del self.by_ip[ip]

    @staticmethod
    def message(reason: str) -> str:
        if reason == PER_IP:
            return "too many open connections from this address"
        return "the service has no connections to spare"


def peer_ip(transport: object) -> str:
    """The peer's IP address of a socket transport ("?" when it has none)."""
    get = getattr(transport, "get_extra_info", None)
    peer = get("peername") if get is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "?"


def answer_and_linger(transport: asyncio.BaseTransport, answer: bytes,
                      seconds: float = LINGER) -> asyncio.TimerHandle:
    """Write `answer`, shut the sending side, and drop the socket after `seconds`
    unless the client closes first (the caller cancels the returned timer then)."""
    stream = cast(asyncio.WriteTransport, transport)
    stream.write(answer)
    if stream.can_write_eof():
        try:
            stream.write_eof()
        except (OSError, RuntimeError):  # already gone
            pass
    return asyncio.get_running_loop().call_later(seconds, drop, stream)


def drop(transport: asyncio.BaseTransport) -> None:
    """Close now, unsent bytes and all (every stream transport has `abort`, uvloop's
    too), with a reset: a plain close would leave the kernel trying to deliver what it
    holds to a client that does not read, for minutes, after the descriptor is gone."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        except OSError:  # not TCP, or already closed
            pass
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    else:
        transport.close()
