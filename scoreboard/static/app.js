// The live leaderboard page: the board view, the viewer's own rank, and a live
// subscription from the SDK (served from the package at /static/sdk/). Settings come
// from data attributes the server renders on <html>.

import { Scoreboard } from "./sdk/index.js";
import { BoardView } from "./board.js";
import { MyRank, tokenFromHash } from "./me.js";

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

function main() {
  const config = readConfig(document.documentElement);
  const status = document.getElementById("status");
  const label = status.querySelector(".label");
  const board = new BoardView(
    document.getElementById("board"),
    document.getElementById("empty"),
    document.getElementById("version"),
  );
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
  const me = new MyRank(document.getElementById("me"), client, config.board, token,
    (id) => board.markMine(id));

  const onState = (state, info) => {
    const [shown, transport, text] = (SHOWN[state] ?? SHOWN.connecting)(info.transport, info);
    status.dataset.state = navigator.onLine === false ? "offline" : shown;
    status.dataset.transport = transport ?? "";
    label.textContent = navigator.onLine === false ? "Offline" : text;
    if (info.reason) status.title = info.reason;
  };

  client.subscribe(config.board, (update) => {
    board.render(update);
    me.refresh();
  }, { limit: config.limit, onState });
  me.refresh();
}

main();
