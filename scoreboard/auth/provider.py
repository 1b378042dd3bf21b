"""An identity provider's published keys: fetched, cached, refreshed, kept through outages.

The key set comes from `auth.jwks_url`, or from the `jwks_uri` of an OpenID Connect
issuer's discovery document (`{issuer}/.well-known/openid-configuration`), whose
`issuer` must be the configured one and becomes the expected `iss`. Every fetch has a
timeout and a size cap. A key set is kept for the provider's Cache-Control max-age,
within `jwks_min_ttl_seconds`..`jwks_max_ttl_seconds`, then refreshed in the background.

Token verification stays synchronous and never waits for the network: a token whose
`kid` is unknown is refused at once, and asks for a re-fetch that happens at most once
per `jwks_refetch_interval_seconds` — so forged kids cannot make the service hammer the
provider, and a key the provider has just started using is known a moment later
(providers publish new keys before they sign with them, so this is rare).

When a fetch fails the last good keys stay in use; the state says `stale`, with the
cause, in `/ready` and in the `scoreboard_jwks_stale` gauge, and the fetch is retried
with backoff. Only the first key set is required: start-up waits for it up to
`server.connect_timeout` and then fails with the cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from scoreboard.auth.keyring import EMPTY, KeyRing, KeySetError, max_age, ring_from_jwks
from scoreboard.runtime.metrics import Metrics
from scoreboard.runtime.retry import Backoff, wait_or_stop
from scoreboard.settings.model import AuthSettings

log = logging.getLogger("scoreboard.identity")

DISCOVERY = "/.well-known/openid-configuration"
MAX_RETRY = 60.0  # the longest pause between attempts while the provider is down


class FetchError(Exception):
    """The provider could not be reached, or answered something unusable."""


class KeySource:
    def __init__(self, settings: AuthSettings, metrics: Metrics, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.ring: KeyRing = EMPTY
        self.issuer: str | None = settings.oidc_issuer or None
        self.jwks_url: str | None = settings.jwks_url or None
        self.fetches = 0  # key-set fetches attempted (tests, logs)
        self.last_error: str | None = None
        self._fetched_at: float | None = None
        self._next_at = 0.0
        # after a failure, the next attempt: 1 s, 2 s, 4 s … jittered, at most MAX_RETRY
        # and never later than a successful fetch would have refreshed
        self._retry = Backoff(1.0, min(MAX_RETRY, settings.jwks_min_ttl_seconds), clock=clock)
        self._last_unknown = -float("inf")
        self._wake = asyncio.Event()
        self._done = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None

    # -- what verification asks ----------------------------------------------------------

    def missing(self, kid: str) -> None:
        """A token named a kid the ring lacks: re-fetch, at most once per interval."""
        now = self.clock()
        if now - self._last_unknown < self.settings.jwks_refetch_interval_seconds:
            return
        self._last_unknown = now
        self._wake.set()

    @property
    def stale(self) -> bool:
        return self.last_error is not None

    def status(self) -> dict[str, Any]:
        """For /ready: keys in use, their age, and why the last fetch failed if it did."""
        age = None if self._fetched_at is None else round(self.clock() - self._fetched_at, 1)
        out: dict[str, Any] = {"state": "stale" if self.stale else "ok",
                               "keys": len(self.ring), "ageSeconds": age}
        if self.last_error is not None:
            out["error"] = self.last_error
        return out

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self, wait_seconds: float) -> None:
        """Fetch the first key set, retrying for up to `wait_seconds`; `FetchError` with
        the last cause if there is none by then."""
        timeouts = aiohttp.ClientTimeout(total=self.settings.jwks_timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeouts, raise_for_status=False)
        deadline = self.clock() + wait_seconds
        backoff = Backoff(0.1, 2.0, clock=self.clock)
        while not await self.refresh():
            if self.clock() >= deadline:
                raise FetchError(self.last_error or "no key set")
            await backoff.wait(until=deadline)  # the last attempt falls on the deadline

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def run(self) -> None:
        """Refresh when the key set is due, or when a missing kid asks; never ends on a
        provider failure (the keys in hand stay in use)."""
        while True:
            await wait_or_stop(max(0.0, self._next_at - self.clock()), self._wake)
            self._wake.clear()
            await self.refresh()

    async def wait_fetches(self, count: int) -> None:
        """Until `count` fetches have finished (tests)."""
        async with self._done:
            await self._done.wait_for(lambda: self.fetches >= count)

    # -- fetching ------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """One attempt to replace the key set; True when it did."""
        s = self.settings
        try:
            if self.settings.oidc_issuer and (self.jwks_url is None or self.stale):
                self.jwks_url = await self._discover()
            assert self.jwks_url is not None
            document, cache_control = await self._get_json(self.jwks_url)
            ring, skipped = ring_from_jwks(document)
        except (FetchError, KeySetError) as exc:
            self._failed(str(exc))
        except Exception as exc:  # anything else a provider can cause must not end the task
            log.exception("fetching the key set failed")
            self._failed(f"{type(exc).__name__}: {exc}")
        else:
            ttl = max_age(cache_control)
            ttl = s.jwks_ttl_seconds if ttl is None else ttl
            ttl = min(max(ttl, s.jwks_min_ttl_seconds), s.jwks_max_ttl_seconds)
            now = self.clock()
            added = ring.kids - self.ring.kids
            self.ring, self._fetched_at, self._next_at = ring, now, now + ttl
            if self.last_error is not None:
                log.info("the identity provider answers again")
            self.last_error = None
            self._retry.reset()
            self.metrics.key_fetch("ok", stale=False)
            if added or skipped:
                log.info("key set: %d keys (%d new, %d skipped), next refresh in %.0f s",
                         len(ring), len(added), skipped, ttl)
            return True
        finally:
            self.fetches += 1
            async with self._done:
                self._done.notify_all()
        return False

    def _failed(self, why: str) -> None:
        retry = self._retry.next_delay()
        self._next_at = self.clock() + retry
        self.last_error = why
        self.metrics.key_fetch("error", stale=bool(self.ring))
        log.warning("fetching the key set failed (%s); %s, retrying in %.1f s", why,
                    "keeping the last good keys" if self.ring else "no keys yet", retry)

    async def _discover(self) -> str:
        issuer = self.settings.oidc_issuer
        document, _ = await self._get_json(issuer.rstrip("/") + DISCOVERY)
        if document.get("issuer") != issuer:
            raise FetchError(f"the discovery document names issuer {document.get('issuer')!r},"
                             f" not {issuer!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise FetchError("the discovery document has no usable jwks_uri")
        self.issuer = issuer
        return jwks_uri

    async def _get_json(self, url: str) -> tuple[dict[str, Any], str | None]:
        session = self._session
        if session is None:
            raise FetchError("the key source is closed")
        cap = self.settings.jwks_max_bytes
        try:
            async with session.get(url, headers={"Accept": "application/json"}) as r:
                if r.status != 200:
                    raise FetchError(f"{url} answered HTTP {r.status}")
                if r.content_length is not None and r.content_length > cap:
                    raise FetchError(f"{url} sent more than {cap} bytes")
                body = bytearray()
                async for chunk in r.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > cap:
                        raise FetchError(f"{url} sent more than {cap} bytes")
                cache_control = r.headers.get("Cache-Control")
        except TimeoutError:
            raise FetchError(f"{url} did not answer within "
                             f"{self.settings.jwks_timeout_seconds:g} s") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"{url} is unreachable: {exc}") from None
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FetchError(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise FetchError(f"{url} did not answer a JSON object")
        return document, cache_control
