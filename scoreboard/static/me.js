// "Your rank": shown when the page was opened with #token=… in the URL. The token is
// read from the fragment, which browsers never send to a server, and goes out only in
// an Authorization header (the SDK's `me()`).

const REFRESH_MS = 1500;

export function tokenFromHash(hash = window.location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const token = params.get("token");
  return token && token.trim() ? token.trim() : null;
}

export class MyRank {
  constructor(panel, client, board, token, onUser) {
    this.panel = panel;
    this.client = client;
    this.board = board;
    this.token = token;
    this.onUser = onUser;
    this.last = 0;
    this.timer = null;
    this.inFlight = false;
  }

  // Called on every update; fetches at most once per REFRESH_MS.
  refresh() {
    if (!this.token || this.timer) return;
    const wait = Math.max(0, this.last + REFRESH_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.#fetch();
    }, wait);
  }

  async #fetch() {
    if (this.inFlight) return;
    this.inFlight = true;
    this.last = Date.now();
    try {
      const me = await this.client.me({ board: this.board });
      this.onUser(me.userId);
      const where = me.inTop
        ? "in the top 10"
        : `${me.pointsToTop.toLocaleString()} points to the top 10`;
      this.#show([
        ["strong", me.displayName],
        `: rank #${me.rank} of ${me.totalUsers.toLocaleString()} · `,
        `${me.score.toLocaleString()} points · ${where}`,
      ]);
    } catch (err) {
      if (err.status === 404) this.#show(["You have no score on this board yet."]);
      else if (err.status === 401) {
        this.token = null; // refused for good: no more asking
        this.#show(["The token in the address is not valid (any more)."]);
      }
      // else offline: the connection state says so; try again with the next update
    } finally {
      this.inFlight = false;
    }
  }

  #show(parts) {
    this.panel.replaceChildren(
      ...parts.map((part) => {
        if (typeof part === "string") return document.createTextNode(part);
        const el = document.createElement(part[0]);
        el.textContent = part[1];
        return el;
      }),
    );
    this.panel.hidden = false;
  }
}
