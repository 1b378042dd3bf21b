"""Several processes on one PostgreSQL database (`[cluster]`, SPEC §8)."""

from __future__ import annotations

from typing import Annotated

from scoreboard.settings.section import Section, key


class ClusterSettings(Section, frozen=True):
    """Followers and standbys forward score actions to the writer over one internal
    WebSocket on internal_host:internal_port. PostgreSQL only."""

    enabled: Annotated[bool, key("A writer on PostgreSQL takes its followers' forwarded "
                                 "writes on the internal port (internal_host, loopback by "
                                 "default) unless false; a standby that takes over always "
                                 "does. Frames after the handshake are not encrypted: keep "
                                 "the port on a private network or behind a TLS tunnel.")
                       ] = True
    internal_host: Annotated[str, key("Address of the internal port.",
                                      min_length=1)] = "127.0.0.1"
    internal_port: Annotated[int, key("Internal port (0: chosen by the OS).",
                                      ge=0, le=65535)] = 0
    advertise_host: Annotated[str, key("The host other processes use to reach this one "
                                       "(empty: internal_host).")] = ""
    secret: Annotated[str, key("Shared by all processes; empty: derived from the JWT "
                               "secret (auth.jwt_secret).")] = ""
    poll_interval: Annotated[float, key("Followers read the log after every notification "
                                        "and at least this often (seconds).",
                                        ge=0.01, le=60.0)] = 0.5
    max_lag_seqs: Annotated[int, key("A follower further behind than this many records is "
                                     "not ready (/ready answers 503).", ge=0, le=2**53)] = 100000
    max_lag_seconds: Annotated[float, key("A follower further behind than this many seconds "
                                          "is not ready.", ge=0.0, le=86400.0)] = 10.0
    forward_timeout: Annotated[float, key("A forwarded command unanswered for this long is "
                                          "refused with 503.", ge=0.1, le=600.0)] = 10.0
    forward_batch: Annotated[int, key("Commands per frame to the writer.",
                                      ge=1, le=10_000)] = 256
    forward_linger: Annotated[float, key(
        "Under load a frame waits at most this long (seconds) for as many commands as the "
        "last frame carried; bigger frames cost the writer less per action. A lone caller "
        "never waits; 0: frames go at once.", ge=0.0, le=0.1)] = 0.005
    max_wait_seconds: Annotated[float, key(
        "The longest a read with minSeq (or a forwarded write's reply) waits to be applied "
        "here.", ge=0.0, le=60.0)] = 5.0
