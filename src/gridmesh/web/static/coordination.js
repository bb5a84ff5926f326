// The coordination panel: the microgrids' edge agents (mode, online, plan in force), the latest day-ahead
// coordination run (ADMM rounds with their residuals, the gap to the centralised optimum, the agreed PCC
// schedules and coordination prices per microgrid) with an operator button to start one, and a VPP's flexibility envelope (up/down capability per interval) with an operator
// form to dispatch an award over it and see the delivery measured by the full power flow.

import { drawChart } from "./charts.js";
import { escapeHtml } from "./network.js";
import { PollingPanel, timeOf } from "./panels.js";

const POLL_MS = 5000;
const RUNNING_POLL_MS = 1000;
const SHOWN_ROUNDS = 8;
const MODE_CHIP = { connected: "charge", islanded: "discharge", fallback: "idle" };
const ENVELOPE_COLOUR = "#22c55e";
const DELIVERY_LINES = [
  { key: "award_kw", colour: "#f59e0b", label: "award", dash: "6 3" },
  { key: "target_kw", colour: "#6366f1", label: "target" },
  { key: "delivered_kw", colour: "#0ea5e9", label: "delivered", dash: "2 2" },
];
const DAY_MINUTES = 24 * 60;
const HOUR_MS = 3600e3;
// One colour per microgrid, by its place in the run's agents, the same in both schedule charts.
const MICROGRID_COLOURS = ["#6366f1", "#f59e0b", "#0ea5e9", "#ec4899", "#22c55e", "#a855f7"];

function number(value, digits = 1) {
  return value == null ? "—" : value.toLocaleString([], { maximumFractionDigits: digits });
}

function scientific(value) {
  return value == null ? "—" : Number(value).toExponential(2);
}

/** Minutes since midnight of "HH:MM". */
function clockMinutes(hhmm) {
  const [hours, minutes] = hhmm.split(":").map(Number);
  return hours * 60 + minutes;
}

/**
 * One award value per envelope interval: `kw` where the interval starts in [from, to) of the grid day (the
 * clock time as the grid writes it; `to` 00:00 is the day's end), 0 elsewhere. Null when none starts there.
 */
function awardFor(env, kw, from, to) {
  const start = clockMinutes(from);
  const end = to === "00:00" ? DAY_MINUTES : clockMinutes(to);
  const inside = env.time.map((t) => {
    const minute = clockMinutes(t.slice(11, 16));
    return minute >= start && minute < end;
  });
  return inside.some(Boolean) ? inside.map((yes) => (yes ? kw : 0)) : null;
}

/** The envelope as a band from −down to +up kW, its upper edge the line; `lines` are overlays. */
function drawEnvelope(svg, env, lines = []) {
  drawChart(svg, {
    t: env.time, value: env.up_kw, min: env.down_kw.map((v) => -v), max: env.up_kw, lines,
  }, { unit: "kW (up + / down −)", colour: ENVELOPE_COLOUR });
}

/**
 * One line per microgrid of `byMicrogrid` ({name: [per hour]}), hourly from `day` 00:00 UTC. drawChart draws
 * a legend for overlays only, so every microgrid is an overlay; the first is also the main series beneath.
 */
function drawPerMicrogrid(svg, day, names, byMicrogrid, unit) {
  const lines = names.map((name, i) => ({
    value: byMicrogrid[name], colour: MICROGRID_COLOURS[i % MICROGRID_COLOURS.length], label: name,
  }));
  const start = Date.parse(`${day}T00:00:00Z`);
  const t = lines[0].value.map((_, h) => new Date(start + h * HOUR_MS).toISOString());
  drawChart(svg, { t, value: lines[0].value, lines }, { unit, colour: lines[0].colour });
}

/** The run's microgrids that have both a schedule and prices, in the run's order (their colours follow it). */
function scheduledMicrogrids(run) {
  return run.agents.filter((name) => run.pcc_kw[name]?.length && run.price_eur_per_kw[name]?.length);
}

/** The panel; `api` is set on sign-in, `onError(e)` handles failures that belong to no button. */
export class CoordinationPanel extends PollingPanel {
  constructor(root, onError) {
    super(root, onError);
    this.envelopeKey = "";
    this.envelope = null;
    this.schedulesKey = "";
    this.el("run").addEventListener("click", () => this.startRun());
    this.el("vpp").addEventListener("change", () => this.loadEnvelope());
    this.el("award-form").addEventListener("submit", (e) => { e.preventDefault(); this.dispatchAward(); });
  }

  start(api, canOperate) {
    this.el("run").hidden = !canOperate;
    this.el("viewer-note").hidden = canOperate;
    this.el("award-form").hidden = !canOperate;
    this.el("dispatch-note").hidden = canOperate;
    this.envelopeKey = "";
    this.poll(api, POLL_MS);
    this.loadVpps();
  }

  fetch(api) { return Promise.all([api.get("/api/v1/microgrids"), api.get("/api/v1/coordination")]); }

  render([microgrids, runs]) {
    this.renderAgents(microgrids);
    this.renderRun(runs[0] ?? null);
    this.every(runs[0]?.state === "running" ? RUNNING_POLL_MS : POLL_MS);
  }

  renderAgents(microgrids) {
    const online = microgrids.filter((m) => m.agent_online).length;
    this.say("agent-count", `${online} of ${microgrids.length} agents online`);
    this.el("agents").tBodies[0].innerHTML = microgrids.length
      ? microgrids.map((m) => {
        const mode = m.mode || "no agent";
        return `<tr data-site="${escapeHtml(m.site)}" data-mode="${escapeHtml(m.mode)}">` +
          `<td>${escapeHtml(m.name)}</td>` +
          `<td><span class="chip mode ${MODE_CHIP[m.mode] ?? "idle"}">${escapeHtml(mode)}</span></td>` +
          `<td>${m.agent_online ? "online" : '<span class="muted">offline</span>'}</td>` +
          `<td class="num">${m.import_kw == null ? "—" : `${number(m.import_kw)} kW`}</td>` +
          `<td class="num">${m.plan_seq ? "plan" : "—"}</td>` +
          `<td class="muted">${escapeHtml(m.reason)}${m.since ? ` · since ${escapeHtml(timeOf(m.since))}` : ""}</td></tr>`;
      }).join("")
      : '<tr><td colspan="6" class="muted empty">no microgrids</td></tr>';
  }

  renderRun(run) {
    const summary = this.el("run-summary");
    if (run === null) {
      summary.innerHTML = '<span class="muted">no coordination run yet</span>';
      this.el("rounds").tBodies[0].innerHTML = "";
      this.renderSchedules(null);
      return;
    }
    const gap = run.gap == null ? "—" : `${number(run.gap * 100, 2)} %`;
    summary.dataset.state = run.state;
    summary.innerHTML =
      `<b>${escapeHtml(run.id)}</b> · ${escapeHtml(run.day)} · <span class="run-state">${escapeHtml(run.state)}</span>` +
      ` · <span data-part="iterations">${run.iterations}</span> rounds` +
      ` · ${run.converged ? "converged" : run.state === "running" ? "converging…" : "not converged"}` +
      ` · gap to centralised <span data-part="gap">${gap}</span>` +
      (run.objective_eur == null ? "" : ` · ${number(run.objective_eur, 2)} € (optimum ${number(run.centralised_eur, 2)} €)`) +
      (run.plans_sent.length ? ` · plans sent to ${run.plans_sent.map(escapeHtml).join(", ")}` : "") +
      (run.error ? ` · <span class="error">${escapeHtml(run.error)}</span>` : "");
    const rounds = run.residuals.slice(-SHOWN_ROUNDS);
    this.el("rounds").tBodies[0].innerHTML = rounds.map((r) => {
      const ok = r.primal <= r.eps_primal && r.dual <= r.eps_dual;
      return `<tr${ok ? ' class="converged"' : ""}><td class="num">${r.iteration}</td>` +
        `<td class="num">${scientific(r.primal)}</td><td class="num">${scientific(r.eps_primal)}</td>` +
        `<td class="num">${scientific(r.dual)}</td><td class="num">${scientific(r.eps_dual)}</td>` +
        `<td class="num">${number(r.rho, 3)}</td></tr>`;
    }).join("");
    this.renderSchedules(run);
  }

  /**
   * The run's agreed PCC schedules and coordination prices, or a note when it has none. Redrawn only when
   * the run, its rounds or its state change (the schedules arrive with the final state), to avoid flicker.
   */
  renderSchedules(run) {
    const key = run === null ? "" : `${run.id}:${run.iterations}:${run.state}`;
    if (key === this.schedulesKey) return;
    this.schedulesKey = key;
    const names = run === null ? [] : scheduledMicrogrids(run);
    const note = this.el("schedules-note");
    note.hidden = run === null || names.length > 0;
    note.textContent = run?.state === "running" ? "no schedules yet: they come with the run's outcome"
      : "this run has no schedules";
    this.el("schedules").hidden = names.length === 0;
    if (names.length === 0) return;
    // drawn once visible: the charts take their size from the page
    drawPerMicrogrid(this.el("pcc-chart"), run.day, names, run.pcc_kw, "kW (import +)");
    drawPerMicrogrid(this.el("price-chart"), run.day, names, run.price_eur_per_kw, "€/kW");
  }

  async startRun() {
    const button = this.el("run");
    button.disabled = true;
    this.say("run-result", "");
    try {
      const run = await this.api.post("/api/v1/coordination", {});
      this.say("run-result", `${run.id} started for ${run.day}`);
      this.refresh();
    } catch (e) {
      if (e.status) this.say("run-result", e.message); else this.onError(e);
    } finally {
      button.disabled = false;
    }
  }

  async loadVpps() {
    try {
      const vpps = await this.api.get("/api/v1/vpp");
      this.el("vpp").replaceChildren(...vpps.map((v) => new Option(v.name, v.id)));
      this.el("envelope-card").hidden = vpps.length === 0;
      if (vpps.length) this.loadEnvelope();
    } catch (e) {
      this.onError(e);
    }
  }

  async loadEnvelope() {
    const site = this.el("vpp").value;
    if (!this.api || !site || site === this.envelopeKey) return;
    this.envelopeKey = site;
    this.envelope = null;
    this.clearDelivery();
    this.say("envelope-summary", "computing the envelope…");
    try {
      const env = await this.api.get(`/api/v1/vpp/${encodeURIComponent(site)}/envelope`);
      const up = Math.max(...env.up_kw), down = Math.max(...env.down_kw);
      this.el("envelope-summary").innerHTML =
        `${escapeHtml(env.day)}: up <b data-part="up-max">${number(up)} kW</b> (min ${number(Math.min(...env.up_kw))})` +
        ` · down <b data-part="down-max">${number(down)} kW</b> (min ${number(Math.min(...env.down_kw))})` +
        ` · ${env.time.length} intervals of ${number(env.dt_h * 60, 0)} min`;
      drawEnvelope(this.el("envelope"), env);
      this.envelope = env;
    } catch (e) {
      this.envelopeKey = "";
      if (e.status) this.say("envelope-summary", e.message); else this.onError(e);
    }
  }

  /** Hide the last delivery (another VPP or a new envelope makes it stale). */
  clearDelivery() {
    this.el("delivery-result").hidden = true;
    this.say("dispatch-result", "");
  }

  async dispatchAward() {
    const env = this.envelope;
    const from = this.el("award-from").value, to = this.el("award-to").value;
    this.say("dispatch-result", "");
    if (env === null) {
      this.say("dispatch-result", "the envelope is not loaded yet");
      return;
    }
    const award = awardFor(env, Number(this.el("award-kw").value), from, to);
    if (award === null) {
      this.say("dispatch-result", `no interval of ${env.day} starts between ${from} and ${to}`);
      return;
    }
    const button = this.el("dispatch");
    button.disabled = true;
    this.say("dispatch-result", "dispatching through the day's power flow…");
    try {
      const delivery = await this.api.post(
        `/api/v1/vpp/${encodeURIComponent(env.site)}/dispatch`, { award_kw: award, day: env.day },
      );
      if (this.envelope !== env) return; // another VPP was chosen meanwhile
      this.say("dispatch-result", `award for ${delivery.day} dispatched`);
      this.renderDelivery(env, delivery);
    } catch (e) {
      if (e.status) this.say("dispatch-result", e.message); else this.onError(e);
    } finally {
      button.disabled = false;
    }
  }

  renderDelivery(env, delivery) {
    const s = delivery.summary;
    const share = s.delivered_share == null ? null : s.delivered_share * 100;
    const first = delivery.reason.findIndex(Boolean);
    this.el("dispatch-summary").innerHTML =
      `delivered <b data-part="delivered-share">${number(share)} %</b> of ${number(s.awarded_kwh)} kWh awarded` +
      ` · clipped <span data-part="clipped-intervals">${number(s.clipped_intervals, 0)}</span> intervals` +
      ` (<span data-part="clipped-kwh">${number(s.clipped_kwh)} kWh</span>` +
      (first < 0 ? ")" : `, first at ${escapeHtml(delivery.time[first].slice(11, 16))}: ${escapeHtml(delivery.reason[first])})`) +
      ` · cost <span data-part="cost">${number(s.cost_eur, 2)} €</span>` +
      ` · mean error vs target <span data-part="mae">${number(s.mae_vs_target_kw, 2)} kW</span>`;
    this.el("delivery-result").hidden = false; // before drawing: the chart takes its size from the page
    drawEnvelope(this.el("delivery"), env, DELIVERY_LINES.map((line) => ({ ...line, value: delivery[line.key] })));
  }
}
