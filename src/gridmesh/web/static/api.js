// Talking to the API: the token (from #token=…, localStorage or the sign-in dialog), authenticated
// fetches that turn JSON errors into exceptions, and the WebSocket stream with reconnect and back-off.

const TOKEN_KEY = "gridmesh.token";

export class Unauthorized extends Error {}

/** Take a token from `#token=…` (then remove it from the address bar), else from localStorage. */
export function initialToken() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function saveToken(token) { localStorage.setItem(TOKEN_KEY, token); }
export function forgetToken() { localStorage.removeItem(TOKEN_KEY); }

export class Api {
  constructor(token) { this.token = token; }

  async request(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${this.token}` } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => null);
    if (response.status === 401) throw new Unauthorized(data?.error ?? "token refused");
    if (!response.ok) {
      const error = new Error(data ? `${data.error} — ${data.fix}` : `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  get(path, params) {
    const query = params ? `?${new URLSearchParams(Object.entries(params).filter(([, v]) => v != null))}` : "";
    return this.request("GET", path + query);
  }

  post(path, body) { return this.request("POST", path, body); }
}

/**
 * Keep a WebSocket to /api/v1/stream open. The token goes in the first message, not the URL, so it stays
 * out of server logs. `handlers`: onMessage(msg), onStatus(state, text), onRefused().
 */
export function connectStream(token, handlers) {
  let delay = 1000;
  let stopped = false;
  let socket = null;

  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/stream`);
    handlers.onStatus("connecting", "connecting…");
    socket.onopen = () => socket.send(JSON.stringify({ token }));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "hello") {
        delay = 1000;
        handlers.onStatus("live", "live");
      }
      handlers.onMessage(message);
    };
    socket.onclose = (event) => {
      if (stopped) return;
      if (event.code === 4401) {
        handlers.onStatus("refused", "token refused");
        handlers.onRefused();
        return;
      }
      const seconds = Math.round(delay / 1000);
      handlers.onStatus("retrying", `disconnected — retry in ${seconds} s`);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 15000);
    };
  };
  open();
  return () => { stopped = true; socket?.close(); };
}
