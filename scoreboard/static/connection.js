// The live connection: WebSocket first, then SSE, then polling with ETag.
//
// A transport that has worked once on this page stays the choice when it drops (the
// server is probably restarting): it is retried with exponential backoff and jitter.
// A transport that fails twice without ever opening is taken to be blocked (a proxy
// without WebSocket support, say) and the next one down is tried. Polling tries the
// WebSocket again every so often, to climb back up.

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8000;
const POLL_MS = 2000;
const POLL_UPGRADE_MS = 30000;
const LADDER = ["ws", "sse", "poll"];

export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2)); // "equal jitter"
}

export function webSocketUrl(config, token, where = window.location) {
  const scheme = where.protocol === "https:" ? "wss" : "ws";
  let base;
  if (config.wsUrl && config.wsUrl.startsWith("/")) {
    base = `${scheme}://${where.host}${config.wsUrl}`; // one origin behind a reverse proxy
  } else if (config.wsUrl) {
    base = config.wsUrl;
  } else {
    base = `${scheme}://${where.hostname}:${config.wsPort}${config.wsPath}`;
  }
  const url = new URL(base);
  url.searchParams.set("board", config.board);
  url.searchParams.set("limit", config.limit);
  // Browsers cannot set headers on a WebSocket; the WS port logs no query strings.
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

function query(config) {
  return `board=${encodeURIComponent(config.board)}&limit=${encodeURIComponent(config.limit)}`;
}

export class LiveConnection {
  constructor({ config, token, onUpdate, onState }) {
    this.config = config;
    this.token = token;
    this.onUpdate = onUpdate;
    this.onState = onState;
    this.rung = 0;
    this.worked = new Set();
    this.failures = 0; // consecutive failures on this rung
    this.attempt = 0; // for the backoff
    this.timer = null;
    this.cleanup = null;
    this.etag = null;
  }

  start() {
    this.#connect();
  }

  get transport() {
    return LADDER[this.rung];
  }

  #connect() {
    clearTimeout(this.timer);
    this.onState("connecting", this.transport);
    const opened = () => {
      this.worked.add(this.transport);
      this.failures = 0;
      this.attempt = 0;
    };
    const failed = (reason) => this.#failed(reason);
    if (this.transport === "ws") this.cleanup = this.#webSocket(opened, failed);
    else if (this.transport === "sse") this.cleanup = this.#eventStream(opened, failed);
    else this.cleanup = this.#poll(opened, failed);
  }

  #failed(reason) {
    if (this.cleanup) this.cleanup();
    this.cleanup = null;
    this.failures += 1;
    if (!this.worked.has(this.transport) && this.failures >= 2 && this.rung < LADDER.length - 1) {
      this.rung += 1; // this transport looks blocked: go down one
      this.failures = 0;
      this.#connect();
      return;
    }
    const delay = backoffDelay(this.attempt++);
    this.onState("reconnecting", this.transport, { delay, reason });
    this.timer = setTimeout(() => this.#connect(), delay);
  }

  #webSocket(opened, failed) {
    let ws;
    let done = false;
    const fail = (reason) => {
      if (!done) {
        done = true;
        failed(reason);
      }
    };
    try {
      ws = new WebSocket(webSocketUrl(this.config, this.token));
    } catch (err) {
      queueMicrotask(() => fail(String(err)));
      return () => {};
    }
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg.type === "CONNECTION_ACK") {
        opened();
        this.onState("live", "ws");
      } else if (msg.type === "LEADERBOARD_UPDATE") {
        this.onUpdate(msg.data);
      } else if (msg.type === "ERROR") {
        console.warn("server error", msg.data);
      }
    };
    ws.onclose = (event) => fail(`closed (${event.code})`);
    ws.onerror = () => {}; // onclose follows with the code
    return () => {
      done = true;
      ws.onclose = ws.onmessage = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
    };
  }

  // SSE over fetch, so the token can go in a header (never in a logged URL).
  #eventStream(opened, failed) {
    const abort = new AbortController();
    const headers = { Accept: "text/event-stream" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    (async () => {
      const res = await fetch(`${this.config.ssePath}?${query(this.config)}`, {
        headers, signal: abort.signal, cache: "no-store",
      });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      opened();
      this.onState("live", "sse");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          this.#sseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      throw new Error("stream ended");
    })().catch((err) => {
      if (!abort.signal.aborted) failed(String(err));
    });
    return () => abort.abort();
  }

  #sseEvent(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (event === "leaderboard" && data.length) this.onUpdate(JSON.parse(data.join("\n")));
  }

  #poll(opened, failed) {
    let stopped = false;
    let timer = null;
    const startedAt = Date.now();
    const tick = async () => {
      const headers = {};
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      if (this.etag) headers["If-None-Match"] = this.etag;
      try {
        const res = await fetch(`${this.config.pollPath}?${query(this.config)}`, {
          headers, cache: "no-store",
        });
        if (stopped) return;
        if (res.status === 200) {
          const body = await res.json();
          this.etag = res.headers.get("ETag");
          this.onUpdate({
            board: body.board, version: body.version, top: body.entries,
            timestamp: body.generatedAt,
          });
        } else if (res.status !== 304) {
          throw new Error(`HTTP ${res.status}`);
        }
      } catch (err) {
        if (!stopped) failed(String(err));
        return;
      }
      if (stopped) return;
      opened();
      this.onState("polling", "poll");
      if (Date.now() - startedAt > POLL_UPGRADE_MS) {
        this.#climb(); // try the WebSocket again
        return;
      }
      timer = setTimeout(tick, POLL_MS);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  #climb() {
    if (this.cleanup) this.cleanup();
    this.cleanup = null;
    this.rung = 0;
    this.failures = 0;
    this.worked.delete("ws");
    this.#connect();
  }
}
