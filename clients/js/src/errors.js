// The one error type the SDK throws for anything the server (or the network) refused.

export class ScoreboardError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, requestId?: string|null,
   *          retryAfter?: number|null, body?: unknown, cause?: unknown}} [details]
   */
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "ScoreboardError";
    this.status = details.status ?? 0; // 0: no HTTP answer (network error)
    this.code = details.code ?? "UNKNOWN";
    this.requestId = details.requestId ?? null;
    this.retryAfter = details.retryAfter ?? null; // seconds, when the server said
    this.body = details.body;
  }
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value === "") return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, (at - now) / 1000);
}

/** A ScoreboardError from a non-2xx reply: the JSON error body when there is one. */
export async function errorFromResponse(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const error = body && typeof body === "object" && body.error && typeof body.error === "object"
    ? body.error
    : {};
  const code = typeof error.code === "string" ? error.code : `HTTP_${response.status}`;
  const message = typeof error.message === "string" ? error.message : response.statusText;
  return new ScoreboardError(`${response.status} ${code}: ${message || "request failed"}`, {
    status: response.status,
    code,
    requestId: typeof error.requestId === "string"
      ? error.requestId
      : response.headers.get("X-Request-ID"),
    retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
    body,
  });
}

export function networkError(cause) {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new ScoreboardError(`network error: ${why}`, { code: "NETWORK_ERROR", cause });
}
