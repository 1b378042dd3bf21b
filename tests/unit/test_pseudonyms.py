"""Pseudonyms of hidden users: stable per key, unlinkable without it, found again only
while the user stays hidden."""

from __future__ import annotations

import re

from scoreboard.read.privacy import Pseudonyms, pseudonym, pseudonym_key

SECRET = b"a server secret of at least thirty-two bytes"


def test_a_pseudonym_is_stable_per_key_and_keyed_by_a_derived_key() -> None:
    key = pseudonym_key(SECRET)
    assert key != SECRET and key == pseudonym_key(SECRET) and len(key) == 32
    alice = pseudonym(key, "alice@example.com")
    assert re.fullmatch(r"anon-[a-z2-7]{16}", alice)
    assert alice == pseudonym(pseudonym_key(SECRET), "alice@example.com")
    assert alice != pseudonym(key, "bob@example.com")
    assert alice != pseudonym(pseudonym_key(SECRET + b"!"), "alice@example.com")
    assert alice != pseudonym(SECRET, "alice@example.com")  # the secret itself keys nothing


def test_public_ids_and_resolving_them() -> None:
    hidden: set[str] = set()
    names = Pseudonyms(hidden, pseudonym_key(SECRET))
    alice = names.of("alice")
    assert names.public_id("alice") == "alice" and names.resolve(alice) == alice  # shown
    hidden.add("alice")
    assert names.public_id("alice") == alice and names.resolve(alice) == "alice"
    assert names.resolve("alice") == "alice" and names.resolve("bob") == "bob"
    # a user who hid before this process mapped them is found too
    hidden.add("carol")
    assert names.resolve(pseudonym(pseudonym_key(SECRET), "carol")) == "carol"
    hidden.discard("alice")
    assert names.resolve(alice) == alice  # stands for nobody once shown again
    assert Pseudonyms(hidden).of("carol") != names.of("carol")  # no key: one per process
