// The board's header: the switcher listing GET /boards, the current period's id with a
// live countdown to its end, and the number of players.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const COUNT_REFRESH_MS = 2000;
const CHECK_EVERY_S = 5; // after the end, ask every 5 s whether the next period began

/** "2d 4h 13m" (minutes and up), "45s" under a minute, for `ms` milliseconds left. */
export function timeLeft(ms) {
  if (ms < MINUTE) return `${Math.max(0, Math.ceil(ms / 1000))}s`;
  const days = Math.floor(ms / DAY);
  const hours = Math.floor((ms % DAY) / HOUR);
  const minutes = Math.floor((ms % HOUR) / MINUTE);
  const parts = [];
  if (days) parts.push(`${days}d`);
  if (days || hours) parts.push(`${hours}h`);
  parts.push(`${minutes}m`);
  return parts.join(" ");
}

export class PeriodHeader {
  constructor({ title, picker, period, periodId, countdown, players }, client, onPeriod) {
    this.onPeriod = onPeriod; // called with the period id each count reply names
    this.title = title;
    this.picker = picker;
    this.period = period;
    this.periodId = periodId;
    this.countdown = countdown;
    this.players = players;
    this.client = client;
    this.board = null; // the GET /boards entry shown
    this.ticker = null;
    this.countTimer = null;
    this.countAsked = 0;
  }

  /** Fill the switcher; `current` is selected (added if the list lacks it). */
  list(boards, current) {
    const options = boards.map((b) => {
      const option = document.createElement("option");
      option.value = b.id;
      option.textContent = b.title && b.title !== b.id ? `${b.title} (${b.id})` : b.id;
      return option;
    });
    this.picker.replaceChildren(...options);
    this.picker.value = current;
    this.picker.disabled = boards.length < 2;
  }

  /** Show `board` (a GET /boards entry, or just {id} when the list is unavailable). */
  show(board) {
    this.board = board;
    this.title.textContent = board.title || board.id;
    document.title = `Scoreboard · ${board.title || board.id}`;
    clearInterval(this.ticker);
    this.ticker = null;
    const period = board.period ?? null;
    this.period.hidden = !period && !board.closed;
    this.periodId.textContent = period ? period.id : "";
    this.countdown.textContent = board.closed ? "closed" : "";
    if (period?.endsAt) {
      this.#tick();
      this.ticker = setInterval(() => this.#tick(), 1000);
    }
    this.players.textContent = "";
    this.countAsked = 0;
    this.refreshCount();
  }

  #tick() {
    const left = Date.parse(this.board.period.endsAt) - Date.now();
    this.countdown.textContent = left > 0 ? `resets in ${timeLeft(left)}` : "resetting…";
    if (left <= 0 && Math.floor(-left / 1000) % CHECK_EVERY_S === 0) this.refreshCount();
    this.countdown.dateTime = this.board.period.endsAt;
  }

  /** The number of players, asked at most once per COUNT_REFRESH_MS (on every update). */
  refreshCount() {
    if (!this.board || this.countTimer) return;
    const wait = Math.max(0, this.countAsked + COUNT_REFRESH_MS - Date.now());
    this.countTimer = setTimeout(async () => {
      this.countTimer = null;
      this.countAsked = Date.now();
      const id = this.board.id;
      try {
        const page = await this.client.leaderboard({ board: id, limit: 1 });
        if (this.board.id !== id) return;
        this.players.textContent = players(page.totalUsers);
        if (page.period) this.onPeriod(id, page.period);
      } catch {
        // offline: the connection state says so; the next update asks again
      }
    }, wait);
  }
}

export function players(n) {
  return `${n.toLocaleString()} ${n === 1 ? "player" : "players"}`;
}
