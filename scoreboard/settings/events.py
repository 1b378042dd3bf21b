"""Settings of the event stream (`[events]`, `[events.nats]`), read by `settings`.

Kept apart from the other settings, which pass in their typed section readers: every
bad value is still refused with a message naming its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Section(Protocol):
    """Typed reads from one TOML table; errors name `section.key`."""

    section: str

    def text(self, key: str, *, allow_empty: bool = True) -> str: ...
    def integer(self, key: str, lo: int, hi: int) -> int: ...
    def number(self, key: str, lo: float, hi: float) -> float: ...
    def flag(self, key: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """Publishing committed records to NATS JetStream; off while `url` is empty."""

    url: str
    stream: str
    subject_prefix: str
    credentials: str  # a .creds file; a user and password may also go in the url
    create_stream: bool
    ack_timeout: float


@dataclass(frozen=True, slots=True)
class EventSettings:
    buffer_records: int  # the newest records kept in memory; older ones come from the log
    max_consumers: int  # open SSE feeds and waiting long polls
    page_limit: int  # the largest `limit` of a JSON page
    max_wait: float  # the longest `wait` of a long poll
    nats: NatsSettings


def _nats_name(section: Section, key: str) -> str:
    value = section.text(key, allow_empty=False)
    if any(ch in value for ch in " \t*>") or value.startswith(".") or value.endswith("."):
        raise ValueError(f"{section.section}.{key}: {value!r} is not a valid NATS name")
    return value


def read_events(ev: Section, na: Section) -> EventSettings:
    nats = NatsSettings(
        url=na.text("url"),
        stream=_nats_name(na, "stream"),
        subject_prefix=_nats_name(na, "subject_prefix"),
        credentials=na.text("credentials"),
        create_stream=na.flag("create_stream"),
        ack_timeout=na.number("ack_timeout", 0.01, 600.0),
    )
    if nats.url and not nats.url.startswith(("nats://", "tls://")):
        raise ValueError(f"{na.section}.url: expected nats://host:port, tls://… or empty")
    if "." in nats.stream:
        raise ValueError(f"{na.section}.stream: a stream name may not contain '.'")
    return EventSettings(
        buffer_records=ev.integer("buffer_records", 0, 10_000_000),
        max_consumers=ev.integer("max_consumers", 1, 100_000),
        page_limit=ev.integer("page_limit", 1, 100_000),
        max_wait=ev.number("max_wait", 0.0, 3600.0),
        nats=nats,
    )
