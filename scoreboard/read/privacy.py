"""Pseudonyms: how a user who hid their name appears in public views.

A hidden user is shown under `anon-` followed by 16 base32 characters of
HMAC-SHA256(key, userId): stable (the same on every process and after a restart, for
as long as the key stays), and not to be turned back into the user id by anyone
without the key. The key is derived from the server's secret with a fixed label, so
the secret itself never keys anything public and the derived key can sign nothing.

Only hidden users are mapped; the maps grow with the users who ever hid. A pseudonym
not mapped yet is found by mapping the hidden users not mapped yet (each once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Set

PREFIX = "anon-"
LABEL = b"scoreboard pseudonymous user ids v1"
DIGEST_BYTES = 10  # 80 bits: 16 base32 characters


def pseudonym_key(secret: bytes) -> bytes:
    """The key pseudonyms are made with, derived from the server's secret."""
    return hmac.new(secret, LABEL, hashlib.sha256).digest()


def pseudonym(key: bytes, user_id: str) -> str:
    digest = hmac.new(key, user_id.encode(), hashlib.sha256).digest()[:DIGEST_BYTES]
    return PREFIX + base64.b32encode(digest).decode("ascii").lower()


class Pseudonyms:
    """Public ids of the users in `hidden` (the engine's set, read live)."""

    def __init__(self, hidden: Set[str], key: bytes | None = None) -> None:
        self.hidden = hidden
        # no key: one per process (tests, tools), stable only while it runs
        self._key = key if key is not None else secrets.token_bytes(32)
        self._of: dict[str, str] = {}
        self._user_of: dict[str, str] = {}

    def of(self, user_id: str) -> str:
        """The user's pseudonym, hidden or not."""
        found = self._of.get(user_id)
        if found is None:
            found = self._of[user_id] = pseudonym(self._key, user_id)
            self._user_of[found] = user_id
        return found

    def public_id(self, user_id: str) -> str:
        """The id public views show: a hidden user's pseudonym, anyone else's own id."""
        return self.of(user_id) if user_id in self.hidden else user_id

    def is_hidden(self, user_id: str) -> bool:
        return user_id in self.hidden

    def resolve(self, public_id: str) -> str:
        """The user behind an id a public view showed: a hidden user's pseudonym gives
        their real id; any other id is taken as it is."""
        if public_id.startswith(PREFIX):
            user = self._user_of.get(public_id)
            if user is None:  # a user who hid since (or before a restart): map them all
                for hidden in self.hidden:
                    if hidden not in self._of:
                        self.of(hidden)
                user = self._user_of.get(public_id)
            if user is not None and user in self.hidden:
                return user
        return public_id
