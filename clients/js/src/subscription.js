// A live view of one board's top N: WebSocket first, then SSE, then polling with ETag.
//
// A transport that has worked once stays the choice when it drops (the server is
// probably restarting): it is retried with capped backoff and jitter. A transport that
// fails twice without ever opening is taken to be blocked (no WebSocket port reachable, a
// proxy that buffers streams) and the next one down is tried. Polling climbs back to the
// WebSocket every so often.

import { backoffDelay } from "./backoff.js";
import { SseParser } from "./sse.js";

export const STATES = ["connecting", "live-ws", "live-sse", "polling", "reconnecting", "closed"];

const API = "/api/v1";
const DEFAULTS = {
  limit: 10,
  reconnectBaseMs: 500,
  reconnectMaxMs: 8000,
  pollIntervalMs: 2000,
  upgradeAfterMs: 30_000, // polling tries the WebSocket again after this long
};

export class Subscription {
  #client;
  #ladder;
  #rung = 0;
  #worked = new Set();
  #failures = 0; // consecutive, on this rung
  #attempt = 0; // for the backoff
  #timer = null;
  #stop = null; // ends the running transport
  #generation = 0; // callbacks of an ended transport are ignored
  #refresh = false; // the token was refused: ask for a new one
  #etag = null;
  #lastVersion = null;
  #lastPeriod;
  #lastTop = [];

  constructor(client, board, onUpdate, options = {}) {
    this.#client = client;
    this.board = board;
    this.onUpdate = onUpdate;
    this.options = { ...DEFAULTS, ...options };
    this.state = "connecting";
    this.transport = null;
    this.#ladder = client.WebSocket ? ["ws", "sse", "poll"] : ["sse", "poll"];
    this.#connect();
  }

  get closed() {
    return this.state === "closed";
  }

  /** Stops for good: no timer, socket or stream is left running. */
  close() {
    if (this.closed) return;
    this.#end();
    this.#setState("closed", {});
  }

  #end() {
    this.#generation++;
    clearTimeout(this.#timer);
    this.#timer = null;
    const stop = this.#stop;
    this.#stop = null;
    if (stop) stop();
  }

  #setState(state, info) {
    this.state = state;
    this.options.onState?.(state, { transport: this.transport, ...info });
  }

  #connect() {
    if (this.closed) return;
    this.#end();
    const generation = this.#generation;
    this.transport = this.#ladder[this.#rung];
    this.#setState("connecting", {});
    const current = () => generation === this.#generation && !this.closed;
    const hooks = {
      current,
      opened: (state) => {
        if (!current()) return;
        this.#worked.add(this.transport);
        this.#failures = 0;
        this.#attempt = 0;
        if (this.state !== state) this.#setState(state, {});
      },
      failed: (reason, { unauthorized = false } = {}) => {
        if (!current()) return;
        if (unauthorized) this.#refresh = true;
        this.#failed(reason);
      },
      update: (data) => current() && this.#deliver(data),
      periodClosed: (data) => current() && this.#periodClosed(data),
    };
    const start = { ws: this.#webSocket, sse: this.#eventStream, poll: this.#poll }[this.transport];
    this.#stop = start.call(this, hooks);
  }

  #failed(reason) {
    this.#end();
    this.#failures += 1;
    const blocked = !this.#worked.has(this.transport) && this.#failures >= 2;
    if (blocked && this.#rung < this.#ladder.length - 1) {
      this.#rung += 1;
      this.#failures = 0;
      this.#connect();
      return;
    }
    const delay = backoffDelay(this.#attempt++, {
      baseMs: this.options.reconnectBaseMs, maxMs: this.options.reconnectMaxMs,
      minMs: Math.min(100, this.options.reconnectBaseMs), random: this.#client.random,
    });
    this.#setState("reconnecting", { delay, reason });
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  async #token() {
    const refresh = this.#refresh;
    this.#refresh = false;
    return this.#client.token(refresh);
  }

  #deliver(update) {
    if (update.period !== undefined && this.#lastPeriod !== undefined &&
        update.period !== this.#lastPeriod && this.transport === "poll") {
      // Polling sees no PERIOD_CLOSED message: the period id changing says the same.
      this.#periodClosed({ board: update.board, period: this.#lastPeriod, endsAt: null,
        top: this.#lastTop });
    }
    if (update.period !== undefined) this.#lastPeriod = update.period;
    this.#lastVersion = update.version;
    this.#lastTop = update.top;
    this.onUpdate(update);
  }

  #periodClosed(data) {
    this.#lastPeriod = undefined; // the new period's board follows and is taken as it is
    this.#etag = null;
    this.#lastVersion = null;
    this.options.onPeriodClosed?.(data);
  }

  #query() {
    return { board: this.board, limit: this.options.limit };
  }

  #webSocket(hooks) {
    let ws = null;
    let stopped = false;
    let lastError = null;
    this.#token().then((token) => {
      if (stopped || !hooks.current()) return;
      const url = new URL(this.#client.wsUrl);
      for (const [k, v] of Object.entries(this.#query())) url.searchParams.set(k, String(v));
      // Browsers cannot set headers on a WebSocket; the WebSocket port logs no query strings.
      if (token) url.searchParams.set("token", token);
      ws = new this.#client.WebSocket(url.toString());
      ws.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
        } catch {
          return;
        }
        if (msg.type === "CONNECTION_ACK") hooks.opened("live-ws");
        else if (msg.type === "LEADERBOARD_UPDATE") hooks.update(msg.data);
        else if (msg.type === "PERIOD_CLOSED") hooks.periodClosed(msg.data);
        else if (msg.type === "ERROR") lastError = msg.data;
      };
      ws.onclose = (event) => {
        hooks.failed(`closed (${event.code})`, {
          unauthorized: event.code === 1008 || lastError?.code === "UNAUTHORIZED",
        });
      };
      // Browsers follow an error with a close (and its code); some implementations (Node
      // 20's) fire only the error when the connection cannot be made.
      ws.onerror = () => hooks.failed("WebSocket error", {
        unauthorized: lastError?.code === "UNAUTHORIZED",
      });
    }).catch((err) => hooks.failed(String(err)));
    return () => {
      stopped = true;
      if (ws) {
        ws.onclose = ws.onmessage = ws.onerror = null;
        if (ws.readyState <= 1) ws.close(1000);
        ws = null;
      }
    };
  }

  #eventStream(hooks) {
    const abort = new AbortController();
    (async () => {
      const headers = { Accept: "text/event-stream" };
      if (this.#lastVersion !== null) headers["Last-Event-ID"] = String(this.#lastVersion);
      const token = await this.#token();
      if (token) headers.Authorization = `Bearer ${token}`;
      if (abort.signal.aborted) return;
      const res = await this.#client.rawFetch(`${API}/leaderboard/stream`, this.#query(), {
        headers, signal: abort.signal,
      });
      if (res.status === 401) {
        await res.body?.cancel();
        hooks.failed("HTTP 401", { unauthorized: true });
        return;
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      hooks.opened("live-sse");
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
          if (event.event === "leaderboard") hooks.update(JSON.parse(event.data));
          else if (event.event === "period_closed") hooks.periodClosed(JSON.parse(event.data));
          else if (event.event === "error") {
            const data = JSON.parse(event.data);
            if (data?.code === "UNAUTHORIZED") {
              abort.abort();
              hooks.failed("UNAUTHORIZED", { unauthorized: true });
              return;
            }
          }
        }
      }
      throw new Error("stream ended");
    })().catch((err) => {
      if (!abort.signal.aborted) hooks.failed(String(err));
    });
    return () => abort.abort();
  }

  #poll(hooks) {
    let timer = null;
    const abort = new AbortController();
    const startedAt = Date.now();
    const tick = async () => {
      timer = null;
      try {
        const headers = {};
        if (this.#etag) headers["If-None-Match"] = this.#etag;
        const token = await this.#token();
        if (token) headers.Authorization = `Bearer ${token}`;
        if (abort.signal.aborted) return;
        const res = await this.#client.rawFetch(`${API}/leaderboard`, this.#query(), {
          headers, signal: abort.signal,
        });
        if (res.status === 200) {
          const body = await res.json();
          this.#etag = res.headers.get("ETag");
          hooks.opened("polling");
          const update = {
            board: body.board, version: body.version, top: body.entries,
            timestamp: body.generatedAt,
          };
          if (body.period !== undefined) update.period = body.period;
          hooks.update(update);
        } else if (res.status === 304) {
          await res.body?.cancel();
          hooks.opened("polling");
        } else {
          await res.body?.cancel();
          hooks.failed(`HTTP ${res.status}`, { unauthorized: res.status === 401 });
          return;
        }
      } catch (err) {
        if (!abort.signal.aborted) hooks.failed(String(err));
        return;
      }
      if (!hooks.current()) return;
      if (this.#ladder[0] !== "poll" && Date.now() - startedAt > this.options.upgradeAfterMs) {
        this.#climb();
        return;
      }
      timer = setTimeout(tick, this.options.pollIntervalMs);
    };
    tick();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }

  #climb() {
    this.#rung = 0;
    this.#failures = 0;
    this.#worked.delete(this.#ladder[0]);
    this.#connect();
  }
}
