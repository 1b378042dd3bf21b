// The live leaderboard page: the board view, the viewer's own rank, and a live
// subscription from the SDK (served from the package at /static/sdk/). Settings come
// from data attributes the server renders on <html>.

import { Scoreboard } from "./sdk/index.js";
import { BoardView } from "./board.js";
import { MyRank, tokenFromHash } from "./me.js";
import { PastPeriods } from "./past.js";
import { PeriodHeader, players } from "./period.js";

// The SDK's states, as the page shows them: [data-state, data-transport, label].
const SHOWN = {
  "connecting": (t) => ["connecting", t, "Connecting…"],
  "live-ws": () => ["live", "ws", "Live · WebSocket"],
  "live-sse": () => ["live", "sse", "Live · SSE"],
  "polling": () => ["polling", "poll", "Live · polling"],
  "reconnecting": (t, info) => [
    "reconnecting", t, `Reconnecting in ${Math.ceil(info.delay / 1000)} s…`,
  ],
  "closed": (t) => ["offline", t, "Offline"],
};

function readConfig(root) {
  const d = root.dataset;
  return {
    wsUrl: d.wsUrl || "",
    wsPort: d.wsPort,
    wsPath: d.wsPath,
    board: d.board || "global",
    limit: Number(d.limit || "10"),
  };
}

// `live.public_ws_url` may be absolute, or a path on this origin (a reverse proxy);
// else the WebSocket port on this host.
function webSocketUrl(config, where = window.location) {
  const scheme = where.protocol === "https:" ? "wss" : "ws";
  if (config.wsUrl.startsWith("/")) return `${scheme}://${where.host}${config.wsUrl}`;
  if (config.wsUrl) return config.wsUrl;
  return `${scheme}://${where.hostname}:${config.wsPort}${config.wsPath}`;
}

function boardFromAddress(fallback, where = window.location) {
  const board = new URLSearchParams(where.search).get("board");
  return board && board.trim() ? board.trim() : fallback;
}

// The board, and the past period shown, go in the address (`?board=weekly&period=…`);
// the fragment (a token) is kept as it is.
function setAddress(board, period) {
  const url = new URL(window.location.href);
  url.searchParams.set("board", board);
  if (period) url.searchParams.set("period", period);
  else url.searchParams.delete("period");
  window.history.replaceState(null, "", url);
}

async function main() {
  const config = readConfig(document.documentElement);
  const el = (id) => document.getElementById(id);
  const status = el("status");
  const label = status.querySelector(".label");
  const list = el("board");
  const board = new BoardView(list, el("empty"), el("version"));
  // Once the server refuses the token (a bad or expired one in the address), the page
  // goes on without it: a public board stays live and the panel says why.
  let token = tokenFromHash();
  const client = new Scoreboard({
    baseUrl: window.location.origin,
    wsUrl: webSocketUrl(config),
    getToken: ({ refresh } = {}) => {
      if (refresh) token = null;
      return token;
    },
  });
  const me = new MyRank(el("me"), client, config.board, token, (id) => board.markMine(id));
  const header = new PeriodHeader({
    title: el("title"), picker: el("picker"), period: el("period"),
    periodId: el("period-id"), countdown: el("countdown"), players: el("players"),
  }, client, (id, period) => {
    const shown = header.board.period?.id;
    if (id === current && shown && period !== shown) closing(shown);
  });
  let closing = () => {}; // set by show(): the shown board's period closed
  const viewing = el("viewing");
  const notice = el("notice");

  let boards = [];
  let current = null; // the board id shown
  let subscription = null;
  let generation = 0; // callbacks of a replaced subscription are ignored
  let lastLive = null; // the newest live update, shown again on "Back to live"
  let past = null; // the closed period shown, or null while live

  const onState = (state, info) => {
    const [shown, transport, text] = (SHOWN[state] ?? SHOWN.connecting)(info.transport, info);
    status.dataset.state = navigator.onLine === false ? "offline" : shown;
    status.dataset.transport = transport ?? "";
    label.textContent = navigator.onLine === false ? "Offline" : text;
    if (info.reason) status.title = info.reason;
  };

  const listBoards = async () => {
    try {
      boards = (await client.boards()).boards;
    } catch {
      boards = []; // offline or not public: the switcher shows the board asked for
    }
  };
  const entry = (id) => boards.find((b) => b.id === id) ?? { id, title: id, period: null };

  const showLive = () => {
    past = null;
    viewing.hidden = true;
    list.setAttribute("aria-label", `Top ${config.limit}`);
    for (const b of pastList.list.querySelectorAll("[aria-pressed]")) b.removeAttribute("aria-pressed");
    if (lastLive) board.render(lastLive);
    else board.clear();
  };

  const openPast = async (period) => {
    const id = current;
    past = period.id;
    setAddress(id, period.id);
    let page;
    try {
      page = await client.leaderboard({ board: id, period: period.id, limit: config.limit });
    } catch (err) {
      if (current !== id || past !== period.id) return;
      showLive();
      setAddress(id, null);
      notice.textContent = `Period ${period.id} could not be opened (${err.message}).`;
      notice.hidden = false;
      return;
    }
    if (current !== id || past !== period.id) return; // switched or back meanwhile
    notice.hidden = true;
    for (const b of pastList.list.querySelectorAll("button")) {
      if (b.dataset.period === period.id) b.setAttribute("aria-pressed", "true");
      else b.removeAttribute("aria-pressed");
    }
    el("viewing-label").textContent =
      `Final standings · ${period.id} · ${players(page.totalUsers)}`;
    list.setAttribute("aria-label", `Final standings of ${period.id}`);
    viewing.hidden = false;
    board.final(page.entries, `period ${period.id} · closed`);
    el("back-live").focus();
  };
  const pastList = new PastPeriods(el("past"), el("past-list"), el("past-more"), client,
    openPast);

  const show = (id) => {
    subscription?.close();
    const mine = ++generation;
    current = id;
    lastLive = null;
    notice.hidden = true;
    showLive();
    header.show(entry(id));
    me.board = id;
    pastList.show(id);
    // A period closed (a PERIOD_CLOSED message, or an update of another period): the
    // next period's id and end, and the closed one in the past periods once archived.
    let handled = null;
    const periodClosed = async (closed) => {
      if (mine !== generation || handled === closed) return;
      handled = closed;
      await listBoards();
      if (mine !== generation) return;
      header.show(entry(id));
      pastList.closed(id, closed);
    };
    closing = periodClosed;
    subscription = client.subscribe(id, (update) => {
      if (mine !== generation) return;
      lastLive = update;
      if (past === null) board.render(update);
      const shown = header.board.period?.id;
      if (update.period && shown && update.period !== shown) periodClosed(shown);
      header.refreshCount();
      me.refresh();
    }, {
      limit: config.limit,
      onState: (state, info) => mine === generation && onState(state, info),
      onPeriodClosed: (closed) => periodClosed(closed.period),
    });
    me.refresh();
  };

  el("picker").addEventListener("change", (event) => {
    show(event.target.value);
    setAddress(current, null);
  });
  el("back-live").addEventListener("click", () => {
    showLive();
    setAddress(current, null);
  });

  await listBoards();
  let first = boardFromAddress(config.board);
  if (boards.length && !boards.some((b) => b.id === first)) {
    show(config.board);
    notice.textContent = `There is no board "${first}"; showing ${config.board}.`;
    notice.hidden = false;
    first = config.board;
    setAddress(first, null);
  } else {
    show(first);
  }
  header.list(boards.length ? boards : [entry(first)], first);
  const period = new URLSearchParams(window.location.search).get("period");
  if (period) openPast({ id: period });
}

main();
