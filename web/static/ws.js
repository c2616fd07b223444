// A graphql-transport-ws client, by hand: one subscription over /graphql that reconnects
// with backoff. The token travels in connection_init (a browser cannot set headers on a
// WebSocket).

const PROTOCOL = "graphql-transport-ws";
const AUTH_CLOSE_CODES = new Set([4401, 4403, 4400]);

/**
 * Subscribes to `query`; calls onData(data) for each result and onState(text) when the
 * connection changes. Returns { close() }.
 */
export function subscribe({ query, token, onData, onState = () => {}, onError = () => {} }) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  let socket = null;
  let failures = 0;
  let closed = false;
  let timer = null;

  function connect() {
    if (closed) return;
    socket = new WebSocket(url, PROTOCOL);
    socket.addEventListener("open", () => {
      send({ type: "connection_init", payload: { Authorization: `Bearer ${token}` } });
    });
    socket.addEventListener("message", (message) => receive(message.data));
    socket.addEventListener("close", (event) => retry(event.code));
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      return;
    }
    if (message.type === "connection_ack") {
      failures = 0;
      onState("live");
      send({ id: "events", type: "subscribe", payload: { query } });
    } else if (message.type === "next" && message.payload) {
      if (message.payload.errors) onError(message.payload.errors[0].message);
      if (message.payload.data) onData(message.payload.data);
    } else if (message.type === "error") {
      onError((message.payload && message.payload[0] && message.payload[0].message) || "refused");
    } else if (message.type === "ping") {
      send({ type: "pong" });
    }
  }

  function retry(code) {
    if (closed) return;
    if (AUTH_CLOSE_CODES.has(code)) {
      onState("refused");
      return;
    }
    failures += 1;
    // 0.5 s, 1 s, 2 s ... up to 30 s, with jitter so that many tabs do not reconnect at once.
    const delay = Math.min(30000, 500 * 2 ** (failures - 1)) * (0.8 + Math.random() * 0.4);
    onState(`reconnecting in ${Math.round(delay / 1000)} s`);
    timer = setTimeout(connect, delay);
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (socket) socket.close(1000);
    },
  };
}
