// The demand-response panel: OpenADR events with their status and each site's opt answer, the measured
// results (delivered vs requested), and for operators a form to create an event and a cancel button.
// Event times are wall-clock (OpenADR runs on the wall clock, whatever the platform's speed).

import { escapeHtml } from "./network.js";
import { PollingPanel, timeOf } from "./panels.js";

const POLL_MS = 5000;

function number(value, digits = 1) {
  return value == null ? "—" : value.toLocaleString([], { maximumFractionDigits: digits });
}

function opts(event) {
  return Object.entries(event.opts).map(([site, opt]) =>
    `<span class="chip ${opt === "optIn" ? "charge" : opt === "optOut" ? "discharge" : "idle"}">` +
    `${escapeHtml(site)} ${escapeHtml(opt)}</span>`).join(" ");
}

/** The panel; `api` is set on sign-in, `onError(e)` handles failures that belong to no button. */
export class DrPanel extends PollingPanel {
  constructor(root, onError) {
    super(root, onError);
    this.canOperate = false;
    this.el("events").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-cancel]");
      if (button) this.cancel(button.dataset.cancel, button);
    });
    this.el("form").addEventListener("submit", (e) => { e.preventDefault(); this.create(); });
  }

  start(api, network, canOperate) {
    this.api = api;
    this.canOperate = canOperate;
    const sites = network.sites.filter((s) => s.level === 1);
    this.el("site").replaceChildren(...sites.map((s) => new Option(s.name, s.id)));
    this.el("form").hidden = !canOperate;
    this.el("viewer-note").hidden = canOperate;
    this.poll(api, POLL_MS);
  }

  fetch(api) { return Promise.all([api.get("/api/v1/dr/events"), api.get("/api/v1/dr/results")]); }

  render([events, results]) {
    const active = events.filter((e) => e.status === "active").length;
    this.say("count", `${events.length} event${events.length === 1 ? "" : "s"} · ${active} active`);
    const newest = [...events].reverse();
    this.el("events").tBodies[0].innerHTML = newest.length
      ? newest.map((e) => {
        const cancellable = this.canOperate && (e.status === "scheduled" || e.status === "active");
        const action = cancellable ? `<button type="button" data-cancel="${escapeHtml(e.id)}">Cancel</button>` : "";
        return `<tr data-event="${escapeHtml(e.id)}" data-status="${escapeHtml(e.status)}">` +
          `<td>${escapeHtml(e.id)}</td><td>${escapeHtml(e.signal)}</td><td>${escapeHtml(timeOf(e.start))}</td>` +
          `<td>${escapeHtml(timeOf(e.end))}</td><td class="num">${number(e.requested_kw)} kW</td>` +
          `<td class="status">${escapeHtml(e.status)}</td><td>${opts(e)}</td><td>${action}</td></tr>`;
      }).join("")
      : '<tr><td colspan="8" class="muted empty">no events</td></tr>';
    const measured = [...results].reverse();
    this.el("results").tBodies[0].innerHTML = measured.length
      ? measured.map((r) => {
        const share = r.vens.filter((v) => v.percent_of_requested != null)
          .map((v) => `${escapeHtml(v.ven)} ${number(v.percent_of_requested, 0)} %`).join(", ");
        const notes = r.vens.filter((v) => v.note).map((v) => `${escapeHtml(v.ven)}: ${escapeHtml(v.note)}`).join("; ");
        return `<tr data-result="${escapeHtml(r.event_id)}"><td>${escapeHtml(r.event_id)}</td>` +
          `<td class="num">${number(r.requested_kw)} kW</td><td class="num">${number(r.delivered_kwh, 2)} kWh</td>` +
          `<td>${share || "—"}</td><td class="muted">${r.cancelled ? "cancelled" : notes}</td></tr>`;
      }).join("")
      : '<tr><td colspan="5" class="muted empty">no results yet</td></tr>';
  }

  async create() {
    const startIn = Number(this.el("start-in").value);
    const body = {
      sites: [this.el("site").value],
      level: Number(this.el("level").value),
      signal: this.el("signal").value,
      start: new Date(Date.now() + startIn * 60e3).toISOString(),
      duration_minutes: Number(this.el("duration").value),
    };
    this.say("form-result", "");
    try {
      const event = await this.api.post("/api/v1/dr/events", body);
      this.say("form-result", `${event.id} scheduled for ${Object.keys(event.levels).join(", ")}`);
      this.refresh();
    } catch (e) {
      if (e.status) this.say("form-result", e.message); else this.onError(e);
    }
  }

  async cancel(eventId, button) {
    button.disabled = true;
    try {
      await this.api.request("DELETE", `/api/v1/dr/events/${encodeURIComponent(eventId)}`);
      this.refresh();
    } catch (e) {
      button.disabled = false;
      if (e.status) this.say("form-result", e.message); else this.onError(e);
    }
  }
}
