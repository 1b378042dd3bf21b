// The Scoreboard client: actions with safe retries, reads, and live subscriptions.

import { backoffDelay, sleep } from "./backoff.js";
import { errorFromResponse, networkError, ScoreboardError } from "./errors.js";
import { Subscription } from "./subscription.js";

export const API = "/api/v1";
export const LIVE_PATH = `${API}/leaderboard/live`;
const DEFAULT_WS_PORT = 8081;

// Answers that mean "try again later": the request was not applied, or it is safe to
// send again because every action carries its clientActionId.
const RETRY_STATUSES = new Set([429, 502, 503, 504]);

const DEFAULT_RETRY = {
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 8000,
  maxRetryAfterMs: 60_000, // a longer Retry-After (a quota window) is thrown, not slept
};

function randomId() {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  // randomUUID exists only in secure contexts; getRandomValues exists everywhere.
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function defaultWsUrl(baseUrl) {
  const url = new URL(baseUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.port = String(DEFAULT_WS_PORT);
  url.pathname = LIVE_PATH;
  url.search = "";
  return url.toString();
}

export class Scoreboard {
  #fetch;
  #token;
  #getToken;

  /** @param {import("./index.js").ScoreboardOptions} options */
  constructor(options = {}) {
    const base = options.baseUrl ?? globalThis.location?.origin;
    if (!base) throw new TypeError("Scoreboard: baseUrl is required outside a browser");
    this.baseUrl = String(base).replace(/\/+$/, "");
    let ws = options.wsUrl ? new URL(options.wsUrl, this.baseUrl) : new URL(defaultWsUrl(this.baseUrl));
    if (ws.protocol === "http:") ws.protocol = "ws:";
    if (ws.protocol === "https:") ws.protocol = "wss:";
    if (ws.pathname === "/" || ws.pathname === "") ws.pathname = LIVE_PATH; // an origin only
    this.wsUrl = ws.toString();
    this.#token = options.token ?? null;
    this.#getToken = options.getToken ?? null;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("Scoreboard: no fetch available");
    this.#fetch = options.fetch ? f : f.bind(globalThis);
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket ?? null;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.random = options.random ?? Math.random;
  }

  /** The current token, or null. `refresh`: the last one was refused, ask for a new one. */
  async token(refresh = false) {
    if (this.#getToken) return (await this.#getToken({ refresh })) || null;
    return this.#token;
  }

  url(path, query = {}) {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null) continue;
      url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    return url.toString();
  }

  /** One HTTP call: fetch plus the SDK's headers (no retries). */
  async fetch(path, { method = "GET", query, body, headers = {}, signal, refresh = false } = {}) {
    const h = { Accept: "application/json", ...headers };
    const token = await this.token(refresh);
    if (token) h.Authorization = `Bearer ${token}`;
    const init = { method, headers: h, signal, cache: "no-store" };
    if (body !== undefined) {
      h["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return this.#fetch(this.url(path, query), init);
  }

  /** fetch with the SDK's base URL and nothing else: the caller sets every header. */
  rawFetch(path, query, init) {
    return this.#fetch(this.url(path, query), { cache: "no-store", ...init });
  }

  /**
   * A request with retries: network errors, 429, 502, 503 and 504 are tried again (the
   * same request, so an action keeps its clientActionId), after `Retry-After` when the
   * server gave one, else after a capped exponential backoff with full jitter. A 401
   * asks the token provider once more for a fresh token.
   */
  async request(path, options = {}) {
    const { signal } = options;
    const maxAttempts = Math.max(1, options.maxAttempts ?? this.retry.maxAttempts);
    let refresh = false;
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      let response;
      let failure;
      try {
        response = await this.fetch(path, { ...options, refresh });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        failure = networkError(err);
      }
      if (response?.ok) return response.status === 204 ? null : response.json();
      if (response) failure = await errorFromResponse(response);
      refresh = false;
      if (failure.status === 401 && this.#getToken && !refreshed) {
        refresh = refreshed = true; // once: a token that expired in between
        continue;
      }
      const retryable = failure.status === 0 || RETRY_STATUSES.has(failure.status);
      if (!retryable || attempt + 1 >= maxAttempts) throw failure;
      let delay;
      if (failure.retryAfter !== null) {
        delay = failure.retryAfter * 1000;
        if (delay > this.retry.maxRetryAfterMs) throw failure;
      } else {
        delay = backoffDelay(attempt, {
          baseMs: this.retry.baseDelayMs, maxMs: this.retry.maxDelayMs, random: this.random,
        });
      }
      options.onRetry?.({ attempt: attempt + 1, delayMs: delay, error: failure });
      await sleep(delay, signal);
    }
  }

  /** Report a completed action; safe to call again with the same clientActionId. */
  async submitAction(action, options = {}) {
    if (!action || typeof action.actionType !== "string") {
      throw new TypeError("submitAction: actionType is required");
    }
    const body = {
      actionType: action.actionType,
      clientActionId: action.clientActionId ?? randomId(),
    };
    for (const key of ["board", "proof", "metadata"]) {
      if (action[key] !== undefined) body[key] = action[key];
    }
    return this.request(`${API}/scores/actions`, {
      method: "POST", body, signal: options.signal ?? action.signal,
      maxAttempts: options.maxAttempts, onRetry: options.onRetry,
    });
  }

  leaderboard({ board, limit, period, cursor, signal } = {}) {
    return this.request(`${API}/leaderboard`, { query: { board, limit, period, cursor }, signal });
  }

  me({ board, period, signal } = {}) {
    return this.request(`${API}/users/me/score`, { query: { board, period }, signal });
  }

  around(userId, { radius, board, signal } = {}) {
    const id = encodeURIComponent(userId);
    return this.request(`${API}/leaderboard/around/${id}`, { query: { radius, board }, signal });
  }

  user(userId, { board, period, signal } = {}) {
    const id = encodeURIComponent(userId);
    return this.request(`${API}/users/${id}/score`, { query: { board, period }, signal });
  }

  // SPEC §11: boards with periods.

  boards({ signal } = {}) {
    return this.request(`${API}/boards`, { signal });
  }

  periods(board, { limit, before, signal } = {}) {
    const id = encodeURIComponent(board);
    return this.request(`${API}/boards/${id}/periods`, { query: { limit, before }, signal });
  }

  async users(ids, { board, period, signal } = {}) {
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) {
      throw new ScoreboardError("users: give 1 to 100 ids", { code: "INVALID_REQUEST" });
    }
    return this.request(`${API}/leaderboard/users`, { query: { board, period, ids }, signal });
  }

  /** Live top N of `board`: WebSocket, else SSE, else polling. */
  subscribe(board, onUpdate, options = {}) {
    return new Subscription(this, board ?? "global", onUpdate, options);
  }
}
