// Waiting between tries: capped exponential backoff with full jitter, and a sleep that
// an AbortSignal ends (and that leaves no timer behind when it does).

/**
 * A delay in [minMs, min(maxMs, baseMs * 2^attempt)), drawn uniformly ("full jitter"), so
 * clients that failed together do not come back together.
 */
export function backoffDelay(attempt, { baseMs = 250, maxMs = 8000, minMs = 0,
  random = Math.random } = {}) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(minMs, Math.floor(random() * ceiling));
}

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
