"""The event stream for other services (`[events]`, `[events.nats]`)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from scoreboard.settings.section import Section, key, refuse

# No spaces, wildcards, or dots at either end: a subject token sequence NATS accepts.
NATS_NAME = r"^[^\s*>.]([^\s*>]*[^\s*>.])?$"
NATS_NAME_WORDS = "a NATS name (no spaces, * or >, no . at either end)"


class NatsSettings(Section, frozen=True):
    """Publish every committed record to NATS JetStream as <subject_prefix>.<board>.<kind>,
    with Nats-Msg-Id = seq, after it is committed. Empty url: off."""

    url: Annotated[str, key("nats://host:port or tls://…; empty: off.",
                            pattern=r"^((nats|tls)://|$)",
                            expected="nats://host:port, tls://… or empty")] = ""
    stream: Annotated[str, key("The JetStream stream (no '.').", pattern=NATS_NAME,
                               expected=NATS_NAME_WORDS)] = "SCOREBOARD"
    subject_prefix: Annotated[str, key("Subjects are <subject_prefix>.<board>.<kind>.",
                                       pattern=NATS_NAME,
                                       expected=NATS_NAME_WORDS)] = "scoreboard"
    credentials: Annotated[str, key("A NATS .creds file (a user and password may also go "
                                    "in the url).")] = ""
    create_stream: Annotated[bool, key("Create the stream (file storage, subjects "
                                       "<subject_prefix>.>) when it does not exist.")] = True
    ack_timeout: Annotated[float, key("How long one publish waits for JetStream's ack before "
                                      "the publisher reconnects.", ge=0.01, le=600.0)] = 5.0

    def __post_init__(self) -> None:
        if "." in self.stream:
            refuse("events.nats.stream", "a stream name may not contain '.'")


class EventSettings(Section, frozen=True):
    """GET /api/v1/events (service scope): every committed record, in seq order, as SSE or
    JSON pages."""

    buffer_records: Annotated[int, key(
        "The newest records kept in memory; a consumer further behind reads from the log.",
        ge=0, le=10_000_000)] = 10000
    max_consumers: Annotated[int, key("Open SSE feeds and waiting long polls at once; more "
                                      "are answered 503.", ge=1, le=100_000)] = 64
    page_limit: Annotated[int, key("The most records one JSON page may ask for (?limit=).",
                                   ge=1, le=100_000)] = 1000
    max_wait: Annotated[float, key("The longest ?wait= of a long poll (seconds).",
                                   ge=0.0, le=3600.0)] = 60.0
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
