// The SDK against a real server. tests/integration/test_sdk_js.py starts one and gives
// its URLs here; without them (a plain `npm test`) these tests skip.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import test from "node:test";

import { Scoreboard, ScoreboardError } from "../src/index.js";

const URL_ = process.env.SCOREBOARD_URL;
const WS_URL = process.env.SCOREBOARD_WS_URL;
const CONTROL = process.env.SCOREBOARD_CONTROL_URL;
const skip = URL_ ? false : "no server: SCOREBOARD_URL is not set (run tests/integration/test_sdk_js.py)";
const noWs = typeof WebSocket === "undefined" ? "no global WebSocket (node --experimental-websocket)" : false;
const WAIT_MS = 15_000;

async function tokenFor(sub) {
  const res = await fetch(`${CONTROL}/token?sub=${encodeURIComponent(sub)}`);
  assert.equal(res.status, 200);
  return res.text();
}

function uniqueUser(name) {
  return `${name}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Resolves when `predicate(value)` holds for a value pushed to the returned `push`. */
function waiter() {
  const pending = [];
  const seen = [];
  return {
    seen,
    push(value) {
      seen.push(value);
      for (const p of [...pending]) {
        if (p.predicate(value)) {
          pending.splice(pending.indexOf(p), 1);
          clearTimeout(p.timer);
          p.resolve(value);
        }
      }
    },
    until(predicate, what) {
      const hit = seen.find(predicate);
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const p = { predicate, resolve };
        p.timer = setTimeout(() => {
          pending.splice(pending.indexOf(p), 1);
          reject(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(seen.slice(-5))}`));
        }, WAIT_MS);
        pending.push(p);
      });
    },
  };
}

function closedPort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A TCP proxy to the server that cuts the first connection once its reply starts. */
function droppingProxy(target) {
  const { hostname, port } = new URL(target);
  let connections = 0;
  const server = net.createServer((client) => {
    const drop = connections++ === 0;
    const upstream = net.connect(Number(port), hostname);
    client.pipe(upstream);
    upstream.on("data", (chunk) => {
      if (drop) {
        client.destroy();
        upstream.destroy();
      } else {
        client.write(chunk);
      }
    });
    upstream.on("end", () => client.end());
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    get connections() { return connections; },
    close: () => new Promise((done) => server.close(done)),
  })));
}

test("an action: the id is made once and reused when the reply is lost", { skip }, async () => {
  const user = uniqueUser("drop");
  const token = await tokenFor(user);
  const proxy = await droppingProxy(URL_);
  try {
    const client = new Scoreboard({ baseUrl: proxy.url, token, retry: { baseDelayMs: 50 } });
    const retries = [];
    const result = await client.submitAction({ actionType: "COMPLETE_LEVEL" },
      { onRetry: (r) => retries.push(r) });
    assert.equal(retries.length, 1);
    assert.equal(retries[0].error.code, "NETWORK_ERROR");
    assert.ok(proxy.connections >= 2);
    assert.equal(result.replayed, true); // the first copy was committed
    assert.equal(result.newScore, 10);
    const direct = new Scoreboard({ baseUrl: URL_, token });
    assert.equal((await direct.user(user)).score, 10); // the score rose once
  } finally {
    await proxy.close();
  }
});

test("a quota's 429: Retry-After is waited out, then the same id succeeds", { skip }, async () => {
  const user = uniqueUser("quota");
  const client = new Scoreboard({ baseUrl: URL_, token: await tokenFor(user) });
  await client.submitAction({ actionType: "DAILY_LOGIN_BONUS" });
  const retries = [];
  const started = Date.now();
  const result = await client.submitAction({ actionType: "DAILY_LOGIN_BONUS", clientActionId: `${user}-2` },
    { onRetry: (r) => retries.push(r) });
  const elapsed = Date.now() - started;
  assert.ok(retries.length >= 1);
  assert.equal(retries[0].error.status, 429);
  assert.equal(retries[0].error.code, "QUOTA_EXCEEDED");
  assert.ok(retries[0].error.retryAfter >= 1);
  assert.equal(retries[0].delayMs, retries[0].error.retryAfter * 1000);
  assert.ok(elapsed >= retries[0].delayMs, `${elapsed} ms < ${retries[0].delayMs} ms`);
  assert.equal(result.replayed, false);
  assert.equal(result.newScore, 10);

  const impatient = new Scoreboard({ baseUrl: URL_, token: await tokenFor(user),
    retry: { maxRetryAfterMs: 0 } });
  await assert.rejects(impatient.submitAction({ actionType: "DAILY_LOGIN_BONUS" }), (err) => {
    assert.ok(err instanceof ScoreboardError);
    assert.equal(err.code, "QUOTA_EXCEEDED");
    assert.ok(err.retryAfter >= 1 && typeof err.requestId === "string");
    return true;
  });
});

test("typed errors and reads", { skip }, async () => {
  const user = uniqueUser("reader");
  const client = new Scoreboard({ baseUrl: URL_, token: await tokenFor(user) });
  await assert.rejects(client.submitAction({ actionType: "NO_SUCH_ACTION" }), (err) => {
    assert.ok(err instanceof ScoreboardError && err instanceof Error);
    assert.equal(err.status, 400);
    assert.equal(err.code, "UNKNOWN_ACTION");
    assert.match(err.requestId, /^[A-Za-z0-9._:-]+$/);
    return true;
  });
  await assert.rejects(new Scoreboard({ baseUrl: URL_ }).me(), { status: 401, code: "UNAUTHORIZED" });
  await assert.rejects(client.me(), { status: 404, code: "NOT_FOUND" });
  await assert.rejects(client.user(uniqueUser("nobody")), { status: 404, code: "NOT_FOUND" });

  const done = await client.submitAction({ actionType: "COMPLETE_LEVEL", board: "global" });
  assert.equal(done.userId, user);
  const me = await client.me({ board: "global" });
  assert.equal(me.score, 10);
  const top = await client.leaderboard({ limit: 100 });
  assert.ok(top.entries.some((e) => e.userId === user));
  const around = await client.around("me", { radius: 1 });
  assert.equal(around.userId, user);
  assert.ok(around.entries.length >= 1 && around.entries.length <= 3);
  assert.equal((await client.user(user)).rank, me.rank);
});

test("a refused token is asked for again (getToken with refresh)", { skip }, async () => {
  const user = uniqueUser("refresh");
  const good = await tokenFor(user);
  const asked = [];
  const client = new Scoreboard({
    baseUrl: URL_,
    getToken: ({ refresh }) => {
      asked.push(refresh);
      return refresh ? good : "not.a.token";
    },
  });
  await client.submitAction({ actionType: "COMPLETE_LEVEL" });
  assert.deepEqual(asked, [false, true]);
});

/** SPEC §11 routes another team adds: skipped while the server answers 404 for them. */
async function routeMissing(path) {
  const res = await fetch(`${URL_}${path}`);
  await res.body?.cancel();
  return res.status === 404 ? `${path} is not served yet (404): SPEC §11` : false;
}

test("boards() lists the boards (SPEC §11)", { skip: skip || await routeMissing("/api/v1/boards") }, async () => {
  const boards = await new Scoreboard({ baseUrl: URL_ }).boards();
  const global = boards.boards.find((b) => b.id === "global");
  assert.ok(global);
  for (const key of ["title", "sort", "operator", "ranks", "follows", "reset", "timezone", "period", "closed"]) {
    assert.ok(key in global, key);
  }
});

test("periods(board) pages past periods (SPEC §11)",
  { skip: skip || await routeMissing("/api/v1/boards/global/periods") }, async () => {
    const page = await new Scoreboard({ baseUrl: URL_ }).periods("global", { limit: 5 });
    assert.ok(Array.isArray(page.periods));
    assert.ok("next" in page);
  });

test("users(ids) gives those users in rank order (SPEC §11)",
  { skip: skip || await routeMissing("/api/v1/leaderboard/users?ids=a") }, async () => {
    const a = uniqueUser("friend");
    const b = uniqueUser("friend");
    await new Scoreboard({ baseUrl: URL_, token: await tokenFor(a) }).submitAction({ actionType: "COMPLETE_LEVEL" });
    await new Scoreboard({ baseUrl: URL_, token: await tokenFor(b) }).submitAction({ actionType: "WIN_MATCH" });
    const view = await new Scoreboard({ baseUrl: URL_ }).users([a, b, uniqueUser("ghost")]);
    assert.deepEqual(view.entries.map((e) => e.userId), [b, a]);
  });

function watch(client, board = "global", options = {}) {
  const states = waiter();
  const updates = waiter();
  const sub = client.subscribe(board, (u) => updates.push(u), {
    limit: 50, reconnectBaseMs: 100, reconnectMaxMs: 1000,
    onState: (state, info) => states.push({ state, ...info }), ...options,
  });
  return { sub, states, updates };
}

const hasUser = (user) => (u) => u.top.some((e) => e.userId === user);

test("subscribe over WebSocket; after a server restart it reconnects", { skip: skip || noWs }, async () => {
  const user = uniqueUser("restart");
  const client = new Scoreboard({ baseUrl: URL_, wsUrl: WS_URL, token: await tokenFor(user) });
  const { sub, states, updates } = watch(client);
  try {
    await states.until((s) => s.state === "live-ws", "live-ws");
    await updates.until(() => true, "a first snapshot");
    const restarted = await fetch(`${CONTROL}/restart`, { method: "POST" });
    assert.equal(restarted.status, 200);
    await states.until((s) => s.state === "reconnecting", "reconnecting");
    const back = states.seen.length;
    await states.until((s) => s.state === "live-ws" && states.seen.indexOf(s) >= back, "live-ws again");
    await client.submitAction({ actionType: "COMPLETE_LEVEL" });
    await updates.until(hasUser(user), "the new action in an update");
    assert.equal(sub.transport, "ws");
  } finally {
    sub.close();
  }
  assert.equal(sub.state, "closed");
});

test("falls back to SSE when the WebSocket port is unreachable", { skip }, async () => {
  const user = uniqueUser("sse");
  const client = new Scoreboard({ baseUrl: URL_, wsUrl: `ws://127.0.0.1:${await closedPort()}`,
    token: await tokenFor(user) });
  const { sub, states, updates } = watch(client);
  try {
    await states.until((s) => s.state === "live-sse", "live-sse");
    if (!noWs) assert.ok(states.seen.some((s) => s.transport === "ws" && s.state === "reconnecting"));
    await client.submitAction({ actionType: "COMPLETE_LEVEL" });
    const update = await updates.until(hasUser(user), "the action over SSE");
    assert.equal(typeof update.version, "number");
  } finally {
    sub.close();
  }
});

test("falls back to polling with ETag when SSE is blocked too", { skip }, async () => {
  const user = uniqueUser("poll");
  const statuses = waiter();
  const blockStreams = async (url, init) => {
    if (String(url).includes("/leaderboard/stream")) throw new TypeError("blocked");
    const res = await fetch(url, init);
    if (String(url).includes("/api/v1/leaderboard?")) statuses.push([res.status, init.headers["If-None-Match"] ?? null]);
    return res;
  };
  const client = new Scoreboard({ baseUrl: URL_, wsUrl: `ws://127.0.0.1:${await closedPort()}`,
    token: await tokenFor(user), fetch: blockStreams });
  const { sub, states, updates } = watch(client, "global", { pollIntervalMs: 100 });
  try {
    await states.until((s) => s.state === "polling", "polling");
    await client.submitAction({ actionType: "COMPLETE_LEVEL" });
    await updates.until(hasUser(user), "the action by polling");
    await statuses.until(([s, etag]) => s === 304 && etag, "a 304 for an ETag");
  } finally {
    sub.close();
  }
});

/** Runs a subscription in a child Node process that must exit by itself after close(). */
function closesCleanly(setup) {
  const script = `
    import { Scoreboard } from ${JSON.stringify(new URL("../src/index.js", import.meta.url).href)};
    ${setup}
    const sub = client.subscribe("global", () => {
      sub.close();
      const left = process.getActiveResourcesInfo().filter((r) => r === "Timeout");
      console.log(JSON.stringify({ transport: sub.transport, state: sub.state, timers: left.length }));
    }, { pollIntervalMs: 100 });
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv.filter((a) => a.startsWith("--experimental")),
      "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { out += d; });
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`the process did not exit after close(): something was left running\n${out}`));
    }, WAIT_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`exit ${code}: ${out}`));
      else resolve(JSON.parse(out.trim().split("\n").at(-1)));
    });
  });
}

test("close() leaves nothing running: WebSocket", { skip: skip || noWs }, async () => {
  const seen = await closesCleanly(`const client = new Scoreboard({ baseUrl: ${JSON.stringify(URL_)}, wsUrl: ${JSON.stringify(WS_URL)} });`);
  assert.deepEqual(seen, { transport: "ws", state: "closed", timers: 0 });
});

test("close() leaves nothing running: SSE and polling", { skip }, async () => {
  const ws = `ws://127.0.0.1:${await closedPort()}`;
  const sse = await closesCleanly(`const client = new Scoreboard({ baseUrl: ${JSON.stringify(URL_)}, wsUrl: "${ws}" });`);
  assert.deepEqual(sse, { transport: "sse", state: "closed", timers: 0 });
  const poll = await closesCleanly(`const client = new Scoreboard({ baseUrl: ${JSON.stringify(URL_)}, wsUrl: "${ws}",
    fetch: async (url, init) => { if (String(url).includes("/stream")) throw new TypeError("blocked"); return fetch(url, init); } });`);
  assert.deepEqual(poll, { transport: "poll", state: "closed", timers: 0 });
});
