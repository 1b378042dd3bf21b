// @scoreboard/client: the Scoreboard service's SDK for browsers and Node >= 20.

export { Scoreboard } from "./client.js";
export { ScoreboardError } from "./errors.js";
export { Subscription, STATES } from "./subscription.js";
export { backoffDelay } from "./backoff.js";
