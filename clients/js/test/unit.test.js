// The SDK's pure parts, no server needed.

import assert from "node:assert/strict";
import test from "node:test";

import { backoffDelay, Scoreboard, ScoreboardError } from "../src/index.js";
import { parseRetryAfter } from "../src/errors.js";
import { SseParser } from "../src/sse.js";

test("backoff is capped and fully jittered", () => {
  assert.equal(backoffDelay(0, { baseMs: 100, random: () => 0.999 }), 99);
  assert.equal(backoffDelay(3, { baseMs: 100, random: () => 0.5 }), 400);
  assert.equal(backoffDelay(40, { baseMs: 100, maxMs: 8000, random: () => 0.999 }), 7992);
  assert.equal(backoffDelay(5, { random: () => 0 }), 0);
  assert.equal(backoffDelay(5, { minMs: 100, random: () => 0 }), 100);
});

test("Retry-After in seconds or as an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter("soon"), null);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5);
});

test("SSE events split across chunks, CRLF, comments and retry", () => {
  const p = new SseParser();
  assert.deepEqual(p.feed("retry: 2000\r\n\r\n: heartbeat\n\nevent: lead"), [
    { event: "retry", id: null, data: "", retry: 2000 },
  ]);
  assert.deepEqual(p.feed('erboard\nid: 7\ndata: {"a":\ndata: 1}\n\n'), [
    { event: "leaderboard", id: "7", data: '{"a":\n1}', retry: null },
  ]);
});

test("the WebSocket URL: default port, an origin, or a full URL", () => {
  const a = new Scoreboard({ baseUrl: "https://scores.example/" });
  assert.equal(a.wsUrl, "wss://scores.example:8081/api/v1/leaderboard/live");
  assert.equal(a.baseUrl, "https://scores.example");
  const b = new Scoreboard({ baseUrl: "http://h:8080", wsUrl: "ws://h:9000" });
  assert.equal(b.wsUrl, "ws://h:9000/api/v1/leaderboard/live");
  const c = new Scoreboard({ baseUrl: "http://h:8080", wsUrl: "/live" });
  assert.equal(c.wsUrl, "ws://h:8080/live");
});

test("submitAction sends only the known fields, with a fresh id each call", async () => {
  const bodies = [];
  const fetch = async (url, init) => {
    bodies.push(JSON.parse(init.body));
    assert.equal(init.headers.Authorization, "Bearer t");
    return new Response(JSON.stringify({ ok: true }), { status: 200 });
  };
  const client = new Scoreboard({ baseUrl: "http://h", token: "t", fetch });
  await client.submitAction({ actionType: "A", metadata: { level: 3 }, extra: 1 });
  await client.submitAction({ actionType: "A" });
  assert.deepEqual(Object.keys(bodies[0]).sort(), ["actionType", "clientActionId", "metadata"]);
  assert.match(bodies[0].clientActionId, /^[0-9a-f-]{36}$/);
  assert.notEqual(bodies[0].clientActionId, bodies[1].clientActionId);
});

test("a 503 is retried with the same id after Retry-After; a 400 is not", async () => {
  const seen = [];
  const replies = [
    [503, { error: { code: "OVERLOADED", message: "busy", requestId: "r1" } }, { "Retry-After": "0" }],
    [200, { replayed: false }, {}],
  ];
  const fetch = async (url, init) => {
    seen.push(JSON.parse(init.body).clientActionId);
    const [status, body, headers] = replies.shift();
    return new Response(JSON.stringify(body), { status, headers });
  };
  const client = new Scoreboard({ baseUrl: "http://h", fetch });
  assert.deepEqual(await client.submitAction({ actionType: "A" }), { replayed: false });
  assert.equal(seen.length, 2);
  assert.equal(seen[0], seen[1]);

  const refuse = async () => new Response(
    JSON.stringify({ error: { code: "UNKNOWN_ACTION", message: "no", requestId: "r2" } }),
    { status: 400 });
  const strict = new Scoreboard({ baseUrl: "http://h", fetch: refuse });
  await assert.rejects(strict.submitAction({ actionType: "A" }), (err) => {
    assert.ok(err instanceof ScoreboardError);
    assert.deepEqual([err.status, err.code, err.requestId], [400, "UNKNOWN_ACTION", "r2"]);
    return true;
  });
});

test("network errors: bounded tries, then a typed error; an abort ends the wait", async () => {
  let calls = 0;
  const down = async () => {
    calls++;
    throw new TypeError("fetch failed");
  };
  const client = new Scoreboard({ baseUrl: "http://h", fetch: down, random: () => 0,
    retry: { maxAttempts: 3 } });
  await assert.rejects(client.submitAction({ actionType: "A" }), { code: "NETWORK_ERROR", status: 0 });
  assert.equal(calls, 3);

  const slow = new Scoreboard({ baseUrl: "http://h", fetch: down, random: () => 0.99,
    retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } });
  const abort = new AbortController();
  const pending = slow.submitAction({ actionType: "A" }, { signal: abort.signal });
  setImmediate(() => abort.abort(new Error("stop")));
  await assert.rejects(pending, /stop/);
});

test("a non-JSON error page still gives a ScoreboardError", async () => {
  const fetch = async () => new Response("<html>bad gateway</html>",
    { status: 418, headers: { "X-Request-ID": "proxy-1" } });
  const client = new Scoreboard({ baseUrl: "http://h", fetch });
  await assert.rejects(client.leaderboard(), { status: 418, code: "HTTP_418", requestId: "proxy-1" });
});
