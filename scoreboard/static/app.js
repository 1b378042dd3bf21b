// The live leaderboard page: wiring of the board view, the live connection and the
// viewer's own rank. Settings come from data attributes the server renders on <html>.

import { BoardView } from "./board.js";
import { LiveConnection } from "./connection.js";
import { MyRank, tokenFromHash } from "./me.js";

const STATE_TEXT = {
  connecting: () => "Connecting…",
  live: (transport) => (transport === "ws" ? "Live · WebSocket" : "Live · SSE"),
  polling: () => "Live · polling",
  reconnecting: (_t, info) => `Reconnecting in ${Math.ceil(info.delay / 1000)} s…`,
  offline: () => "Offline",
};

function readConfig(root) {
  const d = root.dataset;
  return {
    wsUrl: d.wsUrl || "",
    wsPort: d.wsPort,
    wsPath: d.wsPath,
    ssePath: d.ssePath,
    pollPath: d.pollPath,
    mePath: d.mePath,
    board: d.board || "global",
    limit: d.limit || "10",
  };
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
  const token = tokenFromHash();
  const me = new MyRank(document.getElementById("me"), config, token, (id) => board.markMine(id));

  const setState = (state, transport, info = {}) => {
    status.dataset.state = navigator.onLine === false ? "offline" : state;
    status.dataset.transport = transport;
    label.textContent = (STATE_TEXT[status.dataset.state] ?? STATE_TEXT.connecting)(
      transport, info,
    );
    if (info.reason) status.title = info.reason;
  };

  const live = new LiveConnection({
    config,
    token,
    onUpdate: (update) => {
      board.render(update);
      me.refresh();
    },
    onState: setState,
  });
  live.start();
  me.refresh();
}

main();
