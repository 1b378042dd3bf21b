// Server-Sent Events read from a fetch body, so no EventSource is needed (and a token
// can go in a header, never in a URL).

/** Splits a text stream into events: feed() chunks, get back `{event, id, data, retry}`. */
export class SseParser {
  constructor() {
    this.buffer = "";
  }

  /** @returns {{event: string, id: string|null, data: string, retry: number|null}[]} */
  feed(chunk) {
    this.buffer += chunk;
    this.buffer = this.buffer.replace(/\r\n?/g, "\n");
    const events = [];
    let end;
    while ((end = this.buffer.indexOf("\n\n")) >= 0) {
      const parsed = parseBlock(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end + 2);
      if (parsed) events.push(parsed);
    }
    return events;
  }
}

function parseBlock(block) {
  let event = "message";
  let id = null;
  let retry = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments are heartbeats
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
    else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
  }
  if (!data.length) return retry === null ? null : { event: "retry", id, data: "", retry };
  return { event, id, data: data.join("\n"), retry };
}

/** Reads `response.body` to the end, calling onEvent for each event. */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of parser.feed(decoder.decode(value, { stream: true }))) onEvent(event);
    }
  } finally {
    reader.releaseLock();
  }
}
