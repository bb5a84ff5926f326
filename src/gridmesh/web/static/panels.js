// The panels beside the map: microgrid cards, ingest counters, the alarm table.

import { escapeHtml } from "./network.js";

const SEVERITY_ORDER = { critical: 0, major: 1, warning: 2 };
const MAX_ALARM_ROWS = 200;

function bar(kind, label, pct) {
  const known = pct != null;
  const width = known ? Math.max(0, Math.min(100, pct)) : 0;
  return `<div class="meter"><span>${label}</span><span class="bar ${kind}"><i style="width:${width}%"></i></span>` +
    `<span class="num">${known ? `${pct.toFixed(0)} %` : "—"}</span></div>`;
}

export function renderSites(container, summaries, siteNames) {
  if (!summaries.length) {
    container.innerHTML = '<p class="muted empty">no microgrids in this network</p>';
    return;
  }
  container.innerHTML = summaries.map((s) => {
    const importing = s.import_kw >= 0;
    const flow = `${Math.abs(s.import_kw).toFixed(1)} kW<small>${importing ? "import" : "export"}</small>`;
    const badge = s.islanded ? '<span class="badge islanded">islanded</span>' : '<span class="badge connected">grid-connected</span>';
    const hz = s.islanded && s.frequency_hz != null ? `<span class="island-hz" title="island frequency">${s.frequency_hz.toFixed(2)} Hz</span>` : "";
    return `<div class="site" data-site="${escapeHtml(s.site)}">` +
      `<div class="site-head"><span class="site-name">${escapeHtml(siteNames.get(s.site) ?? s.site)}</span>${hz}${badge}</div>` +
      `<div class="flow ${importing ? "import" : "export"}">${importing ? "↓" : "↑"} ${flow}</div>` +
      bar("soc", "Battery SOC", s.soc_pct) + bar("res", "Renewable share", s.renewable_share_pct) + "</div>";
  }).join("");
}

export function renderCounters(table, counters) {
  // Every rejection reason is counted from the start; only the ones that happened are worth a row.
  const rows = Object.entries(counters)
    .filter(([k, v]) => !k.startsWith("rejected:") || v > 0)
    .sort(([a], [b]) => a.localeCompare(b));
  table.tBodies[0].innerHTML = rows.length
    ? rows.map(([k, v]) => `<tr class="${k.startsWith("rejected") && v > 0 ? "bad" : ""}"><td>${escapeHtml(k)}</td><td>${v.toLocaleString()}</td></tr>`).join("")
    : '<tr><td class="muted">no counters yet</td><td></td></tr>';
}

export function timeOf(iso) {
  return new Date(iso).toLocaleString([], { hour12: false, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** The alarm table: active before cleared, then by severity, newest first; rows keyed by alarm id. */
export class AlarmTable {
  constructor(table, countEl, onAcknowledge) {
    this.body = table.tBodies[0];
    this.countEl = countEl;
    this.onAcknowledge = onAcknowledge;
    this.alarms = new Map();
    this.canAcknowledge = false;
    this.body.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-ack]");
      if (button) { button.disabled = true; this.onAcknowledge(button.dataset.ack, button); }
    });
  }

  replaceAll(alarms) {
    this.alarms = new Map(alarms.map((a) => [a.id, a]));
    this.render();
  }

  upsert(alarm) {
    this.alarms.set(alarm.id, alarm);
    this.render();
  }

  render() {
    const rows = [...this.alarms.values()].sort((a, b) =>
      (b.active - a.active) || (SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]) || b.raised.localeCompare(a.raised),
    ).slice(0, MAX_ALARM_ROWS);
    const active = [...this.alarms.values()].filter((a) => a.active).length;
    this.countEl.textContent = `${active} active · ${this.alarms.size - active} cleared`;
    if (!rows.length) {
      this.body.innerHTML = '<tr><td colspan="7" class="muted">no alarms</td></tr>';
      return;
    }
    this.body.innerHTML = rows.map((a) => {
      const status = a.acknowledged_by
        ? `${a.active ? "active" : "cleared"} · <span class="acked">acknowledged by ${escapeHtml(a.acknowledged_by)}</span>`
        : a.active ? "active" : "cleared";
      const action = !a.acknowledged_by && this.canAcknowledge ? `<button type="button" data-ack="${escapeHtml(a.id)}">Acknowledge</button>` : "";
      return `<tr data-alarm-id="${escapeHtml(a.id)}" class="${a.active ? "" : "cleared"}">` +
        `<td><span class="sev ${escapeHtml(a.severity)}">${escapeHtml(a.severity)}</span></td><td>${timeOf(a.raised)}</td>` +
        `<td>${escapeHtml(a.kind)}</td><td>${escapeHtml(a.source)}</td><td>${escapeHtml(a.message)}</td>` +
        `<td class="status">${status}</td><td>${action}</td></tr>`;
    }).join("");
  }
}

/**
 * A panel that polls the REST API while signed in. Subclasses give `fetch(api)` (a promise of the data) and
 * `render(data)`; an answer overtaken by a newer load or by sign-out is dropped, errors go to `onError`.
 */
export class PollingPanel {
  constructor(root, onError) {
    this.root = root;
    this.onError = onError;
    this.api = null;
    this.poller = null;
    this.pollMs = null;
    this.loads = 0;
    this.el = (name) => root.querySelector(`[data-part="${name}"]`);
  }

  /** Start polling with `api` every `ms` milliseconds, and load now. */
  poll(api, ms) {
    this.api = api;
    this.every(ms);
    this.refresh();
  }

  /** Poll every `ms` from now on (no change when already so). */
  every(ms) {
    if (this.pollMs === ms && this.poller !== null) return;
    clearInterval(this.poller);
    this.pollMs = ms;
    this.poller = setInterval(() => this.refresh(), ms);
  }

  stop() {
    clearInterval(this.poller);
    this.poller = null;
    this.pollMs = null;
    this.api = null;
    this.loads += 1; // drop the answer of a load in flight
  }

  say(part, text) { this.el(part).textContent = text; }

  async refresh() {
    if (!this.api) return;
    const load = ++this.loads;
    try {
      const data = await this.fetch(this.api);
      if (load === this.loads) this.render(data);
    } catch (e) {
      this.onError(e);
    }
  }
}
