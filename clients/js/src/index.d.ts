// Types of @scoreboard/client. Reply bodies carry `@schema <OpenAPI component>`: a test
// compares their property names with the component schemas the server serves. A field
// marked `@pending` is in SPEC §11 but not served yet (it may be absent from the schema).

// ---- reply bodies -----------------------------------------------------------------------

/** @schema ActionResult */
export interface ActionResult {
  userId: string;
  board: string;
  actionType: string;
  delta: number;
  newScore: number;
  rank: number;
  /** true when this clientActionId had already been applied: the original result. */
  replayed: boolean;
  seq: number;
  /** RFC 3339 instant the action was committed. */
  at: string;
}

/** @schema Entry */
export interface LeaderboardEntry {
  rank: number;
  userId: string;
  displayName: string;
  score: number;
}

/** @schema Leaderboard */
export interface Leaderboard {
  board: string;
  entries: LeaderboardEntry[];
  totalUsers: number;
  version: number;
  generatedAt: string;
  /** The period read (null for a board without periods). @pending SPEC §11 */
  period?: string | null;
  /** Opaque keyset cursor for the next page, null on the last. @pending SPEC §11 */
  nextCursor?: string | null;
}

/** @schema Around */
export interface Around {
  board: string;
  userId: string;
  entries: LeaderboardEntry[];
  totalUsers: number;
  version: number;
}

/** @schema UserScore */
export interface UserScore {
  userId: string;
  board: string;
  displayName: string;
  score: number;
  rank: number;
  inTop: boolean;
  pointsToTop: number;
  totalUsers: number;
  /** 100 × rank / totalUsers, two decimals. @pending SPEC §11 */
  topPercent?: number;
}

/** @schema Error.error */
export interface ErrorDetail {
  code: string;
  message: string;
  requestId: string;
}

/** @schema Error */
export interface ErrorBody {
  error: ErrorDetail;
}

/** The LEADERBOARD_UPDATE data object (WebSocket), the SSE `leaderboard` event's data.
 * @schema LiveUpdate */
export interface LiveUpdate {
  board: string;
  version: number;
  top: LeaderboardEntry[];
  timestamp: string;
  /** The board's current period (null for a board without periods). */
  period: string | null;
}

/** PERIOD_CLOSED (WebSocket) / `event: period_closed` (SSE). @pending SPEC §11 */
export interface PeriodClosed {
  board: string;
  period: string | null;
  endsAt: string | null;
  top: LeaderboardEntry[];
}

/** @schema LiveConfig */
export interface LiveConfig {
  wsUrl: string;
  wsPort: number;
  wsPath: string;
  ssePath: string;
  pollPath: string;
  mePath: string;
  board: string;
  limit: number;
  public: boolean;
}

// ---- SPEC §11: boards and periods (routes not served yet) --------------------------------

/** @pending SPEC §11 */
export interface PeriodWindow {
  id: string;
  startsAt: string | null;
  endsAt: string | null;
}

/** @pending SPEC §11 */
export interface Board {
  id: string;
  title: string;
  sort: "desc" | "asc";
  operator: "sum" | "best" | "latest";
  ranks: "ordinal" | "competition";
  follows: string[];
  reset: string;
  timezone: string;
  period: PeriodWindow | null;
  closed: boolean;
}

/** @pending SPEC §11 */
export interface Boards {
  boards: Board[];
}

/** @pending SPEC §11 */
export interface PastPeriod {
  id: string;
  startsAt: string | null;
  endsAt: string | null;
  totalUsers: number;
  /** The first three of the final standings. */
  top: LeaderboardEntry[];
}

/** @pending SPEC §11 */
export interface Periods {
  board: string;
  periods: PastPeriod[];
  /** Pass as `before` for the next (older) page; null on the last. */
  next: string | null;
}

/** GET /leaderboard/users: the given users' entries in rank order. @pending SPEC §11 */
export interface UsersView {
  board: string;
  period?: string | null;
  entries: LeaderboardEntry[];
}

// ---- the client --------------------------------------------------------------------------

export type TokenProvider = (hint: { refresh: boolean }) => string | null | Promise<string | null>;

export interface WebSocketLike {
  readonly readyState: number;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface RetryOptions {
  /** Tries in all, the first included (default 5). */
  maxAttempts?: number;
  /** Backoff base and cap when the server gave no Retry-After (defaults 250 ms, 8 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A Retry-After longer than this is thrown (as ScoreboardError.retryAfter) instead of
   * waited out (default 60 s). */
  maxRetryAfterMs?: number;
}

export interface ScoreboardOptions {
  /** `https://scores.example.com`; defaults to the page's origin in a browser. */
  baseUrl?: string;
  /** The live WebSocket: a full URL, or an origin (the live path is added). Default: the
   * base URL's host on port 8081. */
  wsUrl?: string;
  /** A fixed bearer token (a user JWT). */
  token?: string | null;
  /** Called for each request and connection; `refresh` is true after the server refused
   * the last token. Cache in here if minting is costly. */
  getToken?: TokenProvider;
  fetch?: typeof fetch;
  /** Where there is no global WebSocket (Node 20 without --experimental-websocket), pass
   * one in; without any, live updates start with SSE. */
  WebSocket?: WebSocketConstructor;
  retry?: RetryOptions;
  /** Random numbers in [0, 1) for jitter (tests). */
  random?: () => number;
}

export interface ActionInput {
  actionType: string;
  /** 1–128 characters; made with crypto.randomUUID() when absent. */
  clientActionId?: string;
  board?: string;
  /** A one-time action proof (JWS) when the rule requires one. */
  proof?: string;
  metadata?: Record<string, unknown>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface SubmitOptions extends CallOptions {
  maxAttempts?: number;
  onRetry?: (info: { attempt: number; delayMs: number; error: ScoreboardError }) => void;
}

export type ConnectionState =
  | "connecting" | "live-ws" | "live-sse" | "polling" | "reconnecting" | "closed";

export type Transport = "ws" | "sse" | "poll";

export interface StateInfo {
  transport: Transport | null;
  /** While reconnecting: the wait in milliseconds, and why. */
  delay?: number;
  reason?: string;
}

export interface SubscribeOptions {
  /** Entries per update (default 10). */
  limit?: number;
  onState?: (state: ConnectionState, info: StateInfo) => void;
  onPeriodClosed?: (closed: PeriodClosed) => void;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  pollIntervalMs?: number;
  /** How long polling runs before the WebSocket is tried again (default 30 s). */
  upgradeAfterMs?: number;
}

export declare const STATES: readonly ConnectionState[];

export declare class Subscription {
  readonly board: string;
  readonly state: ConnectionState;
  readonly transport: Transport | null;
  readonly closed: boolean;
  /** Ends the subscription: no timer, socket or stream stays open. */
  close(): void;
}

export declare class ScoreboardError extends Error {
  constructor(message: string, details?: {
    status?: number; code?: string; requestId?: string | null; retryAfter?: number | null;
    body?: unknown; cause?: unknown;
  });
  /** The HTTP status; 0 when no answer came (network error). */
  readonly status: number;
  /** The server's error code (`RATE_LIMITED`, …), `NETWORK_ERROR`, or `HTTP_<status>`. */
  readonly code: string;
  readonly requestId: string | null;
  /** Seconds from `Retry-After`, when the server sent one. */
  readonly retryAfter: number | null;
  readonly body: unknown;
}

export declare function backoffDelay(attempt: number, options?: {
  baseMs?: number; maxMs?: number; minMs?: number; random?: () => number;
}): number;

export declare class Scoreboard {
  constructor(options?: ScoreboardOptions);
  readonly baseUrl: string;
  readonly wsUrl: string;
  submitAction(action: ActionInput, options?: SubmitOptions): Promise<ActionResult>;
  leaderboard(query?: { board?: string; limit?: number; period?: string; cursor?: string }
    & CallOptions): Promise<Leaderboard>;
  me(query?: { board?: string; period?: string } & CallOptions): Promise<UserScore>;
  around(userId: string | "me", query?: { radius?: number; board?: string } & CallOptions):
    Promise<Around>;
  user(userId: string, query?: { board?: string; period?: string } & CallOptions):
    Promise<UserScore>;
  /** SPEC §11. */
  boards(options?: CallOptions): Promise<Boards>;
  /** SPEC §11: past periods, newest first. */
  periods(board: string, query?: { limit?: number; before?: string } & CallOptions):
    Promise<Periods>;
  /** SPEC §11: a friends view, at most 100 ids. */
  users(ids: string[], query?: { board?: string; period?: string } & CallOptions):
    Promise<UsersView>;
  subscribe(board: string, onUpdate: (update: LiveUpdate) => void,
    options?: SubscribeOptions): Subscription;
}
