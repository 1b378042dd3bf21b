"""`ScoreboardClient`: the async Python client for trusted backends (SPEC §12).

    async with ScoreboardClient("https://scores.example.com", token=service_token) as sb:
        result = await sb.submit_action("WIN_MATCH", token=user_token)
        results = await sb.submit_batch([BatchAction("u1", "COMPLETE_LEVEL")])
        top = await sb.leaderboard(limit=10)
        async for event in sb.events(after=saved_seq):
            ...

Writes are retried the JS SDK's way (see `scoreboard.client.retry`): the client makes
each `clientActionId` (uuid4) unless given one and sends the same id on every try, so
an action whose answer was lost counts once. Every refusal is a `ScoreboardError`.

Tokens: `token` is sent with every request (a service token for batches and the feed,
or one user's token); `token_provider(refresh)` is awaited before each request instead
and is asked again with `refresh=True` once after a 401. `submit_action(token=…)`
reports for the user whose token it is, whatever the client's own token.

The client owns the aiohttp session it makes and closes it on `close()` (or leaving
`async with`); a `session` passed in is used and left open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random as _random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from scoreboard import __version__
from scoreboard.client.errors import ScoreboardConnectionError, ScoreboardError
from scoreboard.client.feed import Mode, follow
from scoreboard.client.models import (
    ActionResult,
    Around,
    BatchAction,
    BatchResult,
    Event,
    ItemError,
    Leaderboard,
    UserScore,
)
from scoreboard.client.retry import OnRetry, RetryNote, RetryPolicy, Sleep

API = "/api/v1"
TokenProvider = Callable[[bool], Awaitable[str]]
# What "no answer" looks like from aiohttp: refused, reset or dropped connections,
# a body cut short, a timeout.
NO_ANSWER = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


def new_action_id() -> str:
    """A fresh `clientActionId`."""
    return str(uuid.uuid4())


def _query(**values: object) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}


def _decode(status: int, body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ScoreboardError(status, "INVALID_RESPONSE",
                              f"the answer is not JSON: {exc}") from exc


class ScoreboardClient:
    """An async client of one Scoreboard service; use it as an async context manager."""

    def __init__(self, base_url: str, token: str | None = None, *,
                 token_provider: TokenProvider | None = None,
                 session: aiohttp.ClientSession | None = None,
                 max_tries: int = 5, backoff_base: float = 0.25, backoff_cap: float = 8.0,
                 max_retry_after: float = 60.0, timeout: float = 10.0,
                 feed_idle_timeout: float = 60.0, on_retry: OnRetry | None = None,
                 sleep: Sleep = asyncio.sleep,
                 random: Callable[[], float] = _random.random) -> None:
        """`base_url` is the service's origin (`https://scores.example.com`).
        `max_tries` bounds the tries of one request (the first included);
        `backoff_base`/`backoff_cap` pace retries with no `Retry-After`; a
        `Retry-After` longer than `max_retry_after` seconds is raised, not waited out.
        `timeout` bounds one try; `feed_idle_timeout` is how long the SSE feed may stay
        silent (the service sends heartbeats) before it is taken for dead and resumed.
        `on_retry` hears each retry; `sleep` and `random` are injectable for tests."""
        if token is not None and token_provider is not None:
            raise ValueError("give a token or a token_provider, not both")
        self.base_url = base_url.rstrip("/")
        self.policy = RetryPolicy(max_tries, backoff_base, backoff_cap, max_retry_after)
        self._token = token
        self._provider = token_provider
        self._refresh = False  # the service refused the provider's last token
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout,
                                                     sock_read=feed_idle_timeout)
        self._on_retry = on_retry
        self._sleep = sleep
        self._random = random
        self._closed = False

    async def __aenter__(self) -> ScoreboardClient:
        self._http()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session the client made (a session passed in stays open)."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"scoreboard-client/{__version__}"})
        return self._session

    # -- tokens -------------------------------------------------------------------------

    async def _bearer(self, token: str | None) -> dict[str, str]:
        if token is None and self._provider is not None:
            refresh, self._refresh = self._refresh, False
            token = await self._provider(refresh)
        token = token or self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _renew(self, error: ScoreboardError) -> bool:
        """A 401 with a provider: ask it for a fresh token on the next request."""
        if error.status != 401 or self._provider is None:
            return False
        self._refresh = True
        return True

    # -- one request, tried as the policy says ------------------------------------------

    async def _try(self, method: str, path: str, params: Mapping[str, str] | None,
                   body: bytes | None, token: str | None, *, longer: float = 0.0) -> Any:
        """One try: the answer's JSON, or the error; `longer` adds to the time bound."""
        headers = {"Accept": "application/json", **await self._bearer(token)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._http().request(method, self.base_url + path, params=params,
                                             data=body, headers=headers,
                                             timeout=self._timeout_for(longer)) as r:
                payload = await r.read()
                status, answer_headers = r.status, r.headers
        except NO_ANSWER as exc:
            raise ScoreboardConnectionError(f"{method} {path}: {exc!r}") from exc
        if status >= 400:
            raise ScoreboardError.from_response(status, payload, answer_headers)
        return _decode(status, payload)

    def _timeout_for(self, longer: float) -> aiohttp.ClientTimeout:
        if not longer:
            return self._timeout
        return aiohttp.ClientTimeout(total=(self._timeout.total or 0.0) + longer)

    async def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    json: Any = None, token: str | None = None) -> Any:
        """The answer's JSON, after as many tries as the policy allows; every try sends
        the same body (one encoding), so a retried action keeps its id."""
        body = None if json is None else orjson.dumps(json)
        backoff = self.policy.backoff(self._random)
        renewed = False
        tries = 0
        while True:
            tries += 1
            try:
                return await self._try(method, path, params, body, token)
            except ScoreboardError as exc:
                error = exc
            if token is None and not renewed and await self._renew(error):
                renewed = True
                continue
            delay = self.policy.delay(error, tries, backoff)
            if delay is None:
                raise error
            if self._on_retry is not None:
                self._on_retry(RetryNote(tries, delay, error))
            await self._sleep(delay)

    # -- writes -------------------------------------------------------------------------

    async def submit_action(self, action_type: str, *, client_action_id: str | None = None,
                            board: str | None = None, proof: str | None = None,
                            metadata: Mapping[str, Any] | None = None,
                            token: str | None = None) -> ActionResult:
        """Report a completed action for the user of `token` (else the client's token):
        `POST /api/v1/scores/actions`. Points come from the service's rules. Without
        `client_action_id` a uuid4 is made; retries send the same one, and a repeat of
        an id already committed answers the original result with `replayed=True`."""
        body: dict[str, Any] = {"actionType": action_type,
                                "clientActionId": client_action_id or new_action_id()}
        if board is not None:
            body["board"] = board
        if proof is not None:
            body["proof"] = proof
        if metadata is not None:
            body["metadata"] = dict(metadata)
        data = await self._call("POST", f"{API}/scores/actions", json=body, token=token)
        return ActionResult.from_json(data)

    async def submit_batch(self, actions: Sequence[BatchAction]) -> list[BatchResult]:
        """Report many users' actions in one commit (service scope):
        `POST /api/v1/scores/actions/batch`. Ids missing are made once, before the
        first try. The answer is in request order: an `ActionResult` for each action
        decided, an `ItemError` for each refused on its own (a quota, a frozen user).
        A batch refused whole raises `ScoreboardError`; nothing of it was committed."""
        if not actions:
            raise ValueError("a batch needs at least one action")
        items = [a.to_json(a.client_action_id or new_action_id()) for a in actions]
        data = await self._call("POST", f"{API}/scores/actions/batch",
                                json={"actions": items})
        return [ItemError.from_json(r) if "error" in r else ActionResult.from_json(r)
                for r in data["results"]]

    # -- reads --------------------------------------------------------------------------

    async def leaderboard(self, board: str | None = None, limit: int | None = None, *,
                          min_seq: int | None = None) -> Leaderboard:
        """The top `limit` of `board` (the service's defaults when None). `min_seq`
        (an `ActionResult.seq`) reads from a state that includes that change."""
        data = await self._call("GET", f"{API}/leaderboard",
                                params=_query(board=board, limit=limit, minSeq=min_seq))
        return Leaderboard.from_json(data)

    async def user_score(self, user_id: str, board: str | None = None, *,
                         min_seq: int | None = None) -> UserScore:
        """One user's score and rank; a user not on the board raises 404 `NOT_FOUND`."""
        data = await self._call("GET", f"{API}/users/{quote(user_id, safe='')}/score",
                                params=_query(board=board, minSeq=min_seq))
        return UserScore.from_json(data)

    async def around(self, user_id: str, radius: int | None = None, board: str | None = None,
                     *, min_seq: int | None = None) -> Around:
        """The users ranked within `radius` places of `user_id`."""
        data = await self._call("GET", f"{API}/leaderboard/around/{quote(user_id, safe='')}",
                                params=_query(board=board, radius=radius, minSeq=min_seq))
        return Around.from_json(data)

    # -- the event feed -----------------------------------------------------------------

    def events(self, after: int = 0, *, mode: Mode = "sse", limit: int | None = None,
               wait: int = 30) -> AsyncIterator[Event]:
        """Every committed record after seq `after`, in order, each once, forever
        (service scope): `GET /api/v1/events`. `mode="sse"` follows the stream;
        `"poll"` asks for JSON pages of up to `limit` events, long-polling `wait`
        seconds. Any disconnect, 503 or restart of the service is resumed from the
        last event yielded; a refusal no retry can fix (401, 403, 400) is raised.
        Store `event.seq` with what you do with the event and pass it back as `after`
        to continue from there. Close it (`contextlib.aclosing`) if you stop early."""
        if mode not in ("sse", "poll"):
            raise ValueError(f"mode must be 'sse' or 'poll' (got {mode!r})")
        if mode == "poll" and wait < 1:
            raise ValueError("a poll feed needs wait >= 1, or it would spin")
        source = _Feed(self, limit, wait)
        return follow(source, after, mode=mode,
                      policy=dataclasses.replace(self.policy, max_tries=None),
                      sleep=self._sleep, random=self._random, on_retry=self._on_retry)


class _Feed:
    """The client's side of `FeedSource`: one try of a stream or a page."""

    def __init__(self, client: ScoreboardClient, limit: int | None, wait: int) -> None:
        self.client = client
        self.limit = limit
        self.wait = wait

    async def stream(self, after: int) -> AsyncGenerator[bytes, None]:
        client = self.client
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after),
                   **await client._bearer(None)}
        url = f"{client.base_url}{API}/events"
        try:
            async with client._http().get(url, params={"after": str(after)}, headers=headers,
                                          timeout=client._stream_timeout) as r:
                if r.status >= 400:
                    raise ScoreboardError.from_response(r.status, await r.read(), r.headers)
                if r.content_type != "text/event-stream":
                    raise ScoreboardError(r.status, "INVALID_RESPONSE",
                                          f"expected an event stream, got {r.content_type}")
                async for chunk in r.content.iter_any():
                    yield chunk
        except NO_ANSWER as exc:
            raise ScoreboardConnectionError(f"GET {API}/events: {exc!r}") from exc

    async def page(self, after: int) -> Mapping[str, Any]:
        client = self.client
        params = _query(after=after, limit=self.limit, wait=self.wait)
        # a long poll may take `wait` seconds on top of the usual bound
        data: Mapping[str, Any] = await client._try("GET", f"{API}/events", params, None,
                                                    None, longer=self.wait)
        return data

    async def renew(self, error: ScoreboardError) -> bool:
        return await self.client._renew(error)
