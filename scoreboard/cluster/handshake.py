"""How a follower proves to the writer that it belongs to the cluster. No I/O here.

Challenge and response, in the first frames of the internal WebSocket:

1. the writer sends `["challenge", <32 random bytes, hex>]`;
2. the follower answers `["answer", HMAC-SHA256(key, nonce ‖ CONTEXT), hex]`;
3. the writer compares in constant time and sends `["welcome"]`, or closes with 1008.

`key` is derived from the cluster's shared secret and used for nothing else; neither the
secret nor the key crosses the wire, and an answer is worth nothing for any other nonce,
so a recorded handshake cannot be replayed. What it does not do: encrypt or sign the
frames that follow. On a network someone else can read or alter, the internal port
belongs behind TLS (a tunnel or a TLS-terminating proxy).

Neither side logs the key or an answer; websockets logs every header and frame at DEBUG,
so its connections here get `SOCKET_LOG`, which never takes DEBUG records.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import orjson

NONCE_BYTES = 32
CONTEXT = b"scoreboard cluster: a follower forwards commands to the writer, v1"
HANDSHAKE_SECONDS = 5.0  # for each step; a peer that says nothing is closed after it
HANDSHAKE_MAX_BYTES = 1024  # the largest frame taken before the peer is authenticated
WELCOME = b'["welcome"]'
REFUSED_CODE = 1008  # policy violation: the close code of a wrong answer


class HandshakeError(ValueError):
    """A handshake frame that does not follow this protocol."""


def cluster_key(secret: bytes) -> bytes:
    """The handshake key, derived from the shared secret: the secret itself (which may
    also sign tokens) is never used to answer a challenge."""
    return hmac.new(secret, b"scoreboard cluster handshake key v1", hashlib.sha256).digest()


def challenge(nonce: bytes) -> bytes:
    return orjson.dumps(["challenge", nonce.hex()])


def read_challenge(frame: str | bytes) -> bytes:
    """The nonce of the writer's first frame."""
    body = _frame(frame, "challenge")
    try:
        nonce = bytes.fromhex(body[1])
    except (IndexError, TypeError, ValueError):
        raise HandshakeError("the challenge carries no nonce") from None
    if len(nonce) != NONCE_BYTES:
        raise HandshakeError("the challenge's nonce has the wrong length")
    return nonce


def answer(key: bytes, nonce: bytes) -> bytes:
    return orjson.dumps(["answer", _mac(key, nonce).hex()])


def verify(key: bytes, nonce: bytes, frame: str | bytes) -> bool:
    """Whether `frame` is the right answer to `nonce`, compared in constant time."""
    try:
        given = bytes.fromhex(_frame(frame, "answer")[1])
    except (HandshakeError, IndexError, TypeError, ValueError):
        return False
    return hmac.compare_digest(given, _mac(key, nonce))


def is_welcome(frame: str | bytes) -> bool:
    try:
        return _frame(frame, "welcome") == ["welcome"]
    except HandshakeError:
        return False


def _mac(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, nonce + CONTEXT, hashlib.sha256).digest()


def _frame(frame: str | bytes, kind: str) -> list[Any]:
    try:
        body = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise HandshakeError(f"not a {kind} frame") from None
    if not isinstance(body, list) or not body or body[0] != kind:
        raise HandshakeError(f"not a {kind} frame")
    return body


class _NoDebug(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that never takes DEBUG records: websockets checks `isEnabledFor(DEBUG)`
    once per connection and then logs no header and no frame of it."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


SOCKET_LOG = _NoDebug(logging.getLogger("scoreboard.cluster.socket"), {})
