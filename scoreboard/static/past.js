// "Past periods": the board's closed periods, newest first (GET /boards/{board}/periods),
// each a button that opens that period's final standings.

import { players } from "./period.js";

const PAGE = 10;
const ARCHIVE_TRIES = 6; // waits of 0.25 s doubling: about 16 s in all
const ARCHIVE_WAIT_MS = 250;

export class PastPeriods {
  constructor(section, list, more, client, onOpen) {
    this.section = section;
    this.list = list;
    this.more = more;
    this.client = client;
    this.onOpen = onOpen;
    this.board = null;
    this.next = null;
    more.addEventListener("click", () => this.#load(false));
  }

  /** Show `board`'s closed periods (again: after a switch or a period closing). */
  show(board) {
    this.board = board;
    this.next = null;
    return this.#load(true);
  }

  /**
   * After `period` closed: show the list again once its archive is complete (a period is
   * listed only then), asking again a few times with a growing wait.
   */
  async closed(board, period, attempt = 0) {
    await this.show(board);
    if (board !== this.board || attempt >= ARCHIVE_TRIES) return;
    if (this.list.querySelector(`[data-period="${CSS.escape(period)}"]`)) return;
    setTimeout(() => this.closed(board, period, attempt + 1), ARCHIVE_WAIT_MS * 2 ** attempt);
  }

  async #load(fresh) {
    const board = this.board;
    let answer;
    try {
      answer = await this.client.periods(board, { limit: PAGE, before: fresh ? undefined : this.next });
    } catch {
      if (fresh && board === this.board) this.section.hidden = true;
      return;
    }
    if (board !== this.board) return; // switched meanwhile
    const items = answer.periods.map((p) => this.#item(p));
    if (fresh) this.list.replaceChildren(...items);
    else this.list.append(...items);
    this.next = answer.next;
    this.more.hidden = !answer.next;
    this.section.hidden = this.list.children.length === 0;
  }

  #item(period) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "past-period";
    button.dataset.period = period.id;
    const id = document.createElement("span");
    id.className = "past-id";
    id.textContent = period.id;
    const about = document.createElement("span");
    about.className = "past-about";
    const winner = period.top[0];
    about.textContent = winner
      ? `${players(period.totalUsers)} · won by ${winner.displayName}`
      : "no players";
    button.append(id, about);
    button.addEventListener("click", () => this.onOpen(period));
    li.append(button);
    return li;
  }
}
