// The top-N list: one <li> per player, kept across updates so rank changes animate
// (FLIP: measure First, apply the Last order, Invert with a transform, Play it back).

const MOVE_MS = 450;

function reducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

function makeRow(userId) {
  const li = document.createElement("li");
  li.className = "row entering";
  li.dataset.userId = userId;
  for (const cls of ["rank", "name", "score"]) {
    const span = document.createElement("span");
    span.className = cls;
    li.append(span);
  }
  li.addEventListener("animationend", () => li.classList.remove("entering"), { once: true });
  return li;
}

export class BoardView {
  constructor(list, empty, footer) {
    this.list = list;
    this.empty = empty;
    this.footer = footer;
    this.rows = new Map(); // userId -> <li>
    this.version = null;
    this.mine = null;
  }

  // `update` is the LEADERBOARD_UPDATE data object: {board, version, top, timestamp}.
  // Every update is a whole snapshot, shown as it comes (after a server restart the
  // versions may begin again; the newest message is still the server's truth).
  render(update) {
    this.version = update.version;
    const first = new Map();
    for (const [id, li] of this.rows) first.set(id, li.getBoundingClientRect().top);

    const keep = new Set();
    update.top.forEach((entry, i) => {
      let li = this.rows.get(entry.userId);
      if (li === undefined) {
        li = makeRow(entry.userId);
        this.rows.set(entry.userId, li);
      }
      const [rank, name, score] = li.children;
      const scoreText = entry.score.toLocaleString();
      if (score.textContent && score.textContent !== scoreText) this.#flash(li);
      rank.textContent = String(entry.rank);
      name.textContent = entry.displayName;
      name.title = entry.displayName;
      score.textContent = scoreText;
      li.dataset.rank = String(entry.rank);
      li.classList.toggle("mine", entry.userId === this.mine);
      if (this.list.children[i] !== li) this.list.insertBefore(li, this.list.children[i] ?? null);
      keep.add(entry.userId);
    });
    for (const [id, li] of this.rows) {
      if (!keep.has(id)) {
        li.remove();
        this.rows.delete(id);
      }
    }
    this.empty.hidden = update.top.length > 0;
    this.#play(first);
    const at = new Date(update.timestamp);
    this.footer.textContent =
      `version ${update.version} · ${Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString()}`;
  }

  /** Empty the list (another board is coming). */
  clear() {
    for (const li of this.rows.values()) li.remove();
    this.rows.clear();
    this.empty.hidden = true;
    this.footer.textContent = "";
  }

  /** Show a closed period's final standings: `entries` as in a leaderboard page. */
  final(entries, note) {
    this.render({ version: null, top: entries, timestamp: null });
    this.footer.textContent = note;
  }

  markMine(userId) {
    this.mine = userId;
    for (const [id, li] of this.rows) li.classList.toggle("mine", id === userId);
  }

  #play(first) {
    if (reducedMotion()) return;
    for (const [id, li] of this.rows) {
      const before = first.get(id);
      if (before === undefined) continue;
      const dy = before - li.getBoundingClientRect().top;
      if (Math.abs(dy) < 1) continue;
      li.animate(
        [{ transform: `translateY(${dy}px)` }, { transform: "translateY(0)" }],
        { duration: MOVE_MS, easing: "cubic-bezier(.2,.8,.2,1)" },
      );
    }
  }

  #flash(li) {
    li.classList.add("bumped");
    // Force a style flush so removing the class starts the fade transition.
    void li.offsetWidth;
    requestAnimationFrame(() => li.classList.remove("bumped"));
  }
}
