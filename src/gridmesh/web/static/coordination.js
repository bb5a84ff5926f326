// The coordination panel: the microgrids' edge agents (mode, online, plan in force), the latest day-ahead
// coordination run (ADMM rounds with their residuals, the gap to the centralised optimum) with an operator
// button to start one, and a VPP's flexibility envelope (up/down capability per interval).

import { drawChart } from "./charts.js";
import { escapeHtml } from "./network.js";
import { PollingPanel, timeOf } from "./panels.js";

const POLL_MS = 5000;
const RUNNING_POLL_MS = 1000;
const SHOWN_ROUNDS = 8;
const MODE_CHIP = { connected: "charge", islanded: "discharge", fallback: "idle" };

function number(value, digits = 1) {
  return value == null ? "—" : value.toLocaleString([], { maximumFractionDigits: digits });
}

function scientific(value) {
  return value == null ? "—" : Number(value).toExponential(2);
}

/** The panel; `api` is set on sign-in, `onError(e)` handles failures that belong to no button. */
export class CoordinationPanel extends PollingPanel {
  constructor(root, onError) {
    super(root, onError);
    this.envelopeKey = "";
    this.el("run").addEventListener("click", () => this.startRun());
    this.el("vpp").addEventListener("change", () => this.loadEnvelope());
  }

  start(api, canOperate) {
    this.el("run").hidden = !canOperate;
    this.el("viewer-note").hidden = canOperate;
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
    this.say("envelope-summary", "computing the envelope…");
    try {
      const env = await this.api.get(`/api/v1/vpp/${encodeURIComponent(site)}/envelope`);
      const up = Math.max(...env.up_kw), down = Math.max(...env.down_kw);
      this.el("envelope-summary").innerHTML =
        `${escapeHtml(env.day)}: up <b data-part="up-max">${number(up)} kW</b> (min ${number(Math.min(...env.up_kw))})` +
        ` · down <b data-part="down-max">${number(down)} kW</b> (min ${number(Math.min(...env.down_kw))})` +
        ` · ${env.time.length} intervals of ${number(env.dt_h * 60, 0)} min`;
      drawChart(this.el("envelope"), {
        t: env.time, value: env.up_kw, min: env.down_kw.map((v) => -v), max: env.up_kw,
      }, { unit: "kW (up + / down −)", colour: "#22c55e" });
    } catch (e) {
      this.envelopeKey = "";
      if (e.status) this.say("envelope-summary", e.message); else this.onError(e);
    }
  }
}
