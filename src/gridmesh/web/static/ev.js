// The EV charging panel: the OCPP chargers (connection, connector status, power and the limit smart
// charging set), the sessions, and the outcome of the latest smart-charging pushes. Polled over REST.

import { escapeHtml } from "./network.js";
import { PollingPanel, timeOf } from "./panels.js";

const POLL_MS = 5000;

function kw(value) {
  return value == null ? "—" : `${value.toLocaleString([], { maximumFractionDigits: 1 })} kW`;
}

function kwh(value) {
  return `${value.toLocaleString([], { maximumFractionDigits: 1 })} kWh`;
}

function pushSummary(push) {
  if (!push) return '<span class="muted">no push yet</span>';
  const others = Object.values(push.outcomes).length - push.accepted - push.rejected - push.timeout;
  const parts = [`<span class="good">${push.accepted} accepted</span>`];
  if (push.rejected) parts.push(`<span class="bad">${push.rejected} rejected</span>`);
  if (push.timeout) parts.push(`<span class="bad">${push.timeout} timeout</span>`);
  if (others) parts.push(`${others} not reached`);
  return `${parts.join(" · ")} · ${(push.wall_s * 1000).toFixed(0)} ms · plan ${escapeHtml(push.plan_status)}` +
    ` (${push.sessions} session${push.sessions === 1 ? "" : "s"}, ${escapeHtml(push.reason)}, ${escapeHtml(timeOf(push.time))})`;
}

/** The panel; `api` is set on sign-in. */
export class EvPanel extends PollingPanel {
  constructor(root, onError) {
    super(root, onError);
  }

  start(api) { this.poll(api, POLL_MS); }

  fetch(api) {
    return Promise.all([
      api.get("/api/v1/ev/chargers"), api.get("/api/v1/ev/sessions", { limit: 20 }), api.get("/api/v1/ev/pushes", { limit: 1 }),
    ]);
  }

  render([chargers, sessions, pushes]) {
    const push = pushes[0];
    const online = chargers.filter((c) => c.connected).length;
    this.el("summary").textContent = chargers.length
      ? `${online} of ${chargers.length} connected · ${kw(chargers.reduce((a, c) => a + c.power_kw, 0))} now`
      : "OCPP is off";
    this.el("push").innerHTML = pushSummary(push);
    this.el("chargers").tBodies[0].innerHTML = chargers.length
      ? chargers.map((c) =>
        `<tr data-charger="${escapeHtml(c.id)}"><td>${escapeHtml(c.id)}</td><td>${escapeHtml(c.site)}</td>` +
        `<td><span class="badge ${c.connected ? "connected" : "offline"}">${c.connected ? `online ${escapeHtml(c.version ?? "")}` : "offline"}</span></td>` +
        `<td>${escapeHtml(c.status || "—")}</td><td class="num">${kw(c.power_kw)}</td>` +
        `<td class="num">${kw(c.limit_kw)}</td></tr>`).join("")
      : '<tr><td colspan="6" class="muted empty">no chargers</td></tr>';
    this.el("sessions").tBodies[0].innerHTML = sessions.length
      ? sessions.map((s) =>
        `<tr data-transaction="${escapeHtml(s.transaction_id)}" class="${s.open ? "" : "cleared"}">` +
        `<td>${escapeHtml(s.charger)} #${s.connector}</td><td>${escapeHtml(timeOf(s.arrival))}</td>` +
        `<td>${escapeHtml(timeOf(s.departure))}</td>` +
        `<td class="num">${kwh(s.delivered_kwh)} / ${kwh(s.requested_kwh)}</td>` +
        `<td>${s.open ? "charging" : "ended"}</td></tr>`).join("")
      : '<tr><td colspan="5" class="muted empty">no sessions yet</td></tr>';
  }
}
