// The self-healing panel: FLISR cases with their switching steps (confirm a plan that waits for an
// operator), the faults injected into the live twin (repair one), and a form to inject a new fault.
// It polls the REST API (cases change as switches answer) and refreshes early when a push hints at a change.

import { escapeHtml } from "./network.js";
import { timeOf } from "./panels.js";

const POLL_MS = 4000;
const MIN_GAP_MS = 1000; // state pushes can come several times a second: one refresh per gap is enough
const MAX_CASES = 20;
const MAX_FAULTS = 50;
const STATUS_TEXT = {
  "awaiting-confirmation": "awaiting confirmation",
  executing: "executing",
  done: "done",
  failed: "failed",
};

function number(value, digits = 0) {
  return value == null ? "—" : value.toLocaleString([], { maximumFractionDigits: digits });
}

function outcomeOf(step, caseStatus) {
  if (step.outcome === "done") return ["done", "done"];
  if (step.outcome != null) return ["failed", step.outcome];
  return ["pending", caseStatus === "awaiting-confirmation" ? "planned" : "pending"];
}

function renderStep(step, caseStatus) {
  const [state, text] = outcomeOf(step, caseStatus);
  return `<li class="step" data-switch="${escapeHtml(step.switch)}" data-outcome="${state}">` +
    `<span class="act ${escapeHtml(step.action)}">${escapeHtml(step.action)}</span>` +
    `<code>${escapeHtml(step.switch)}</code>` +
    `<span class="purpose ${escapeHtml(step.purpose)}">${escapeHtml(step.purpose)}</span>` +
    `<span class="outcome">${escapeHtml(text)}</span></li>`;
}

/** The panel; `api` is set on sign-in, `onError(e)` handles failures that belong to no button. */
export class SelfHealingPanel {
  constructor(root, onError) {
    this.root = root;
    this.onError = onError;
    this.api = null;
    this.canOperate = false;
    this.cases = new Map();
    this.faults = [];
    this.caseErrors = new Map(); // case id -> "error — fix" of its last refused confirmation
    this.pending = new Set(); // case ids and fault ids with a request in flight
    this.timer = null;
    this.poller = null;
    this.lastLoad = 0;
    this.loads = 0;
    this.el = (name) => root.querySelector(`[data-part="${name}"]`);

    this.el("cases").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-confirm]");
      if (button) this.confirm(button.dataset.confirm);
    });
    this.el("faults").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-repair]");
      if (button) this.repair(button.dataset.repair);
    });
    this.el("form").addEventListener("submit", (e) => { e.preventDefault(); this.inject(); });
    this.el("table").addEventListener("change", () => this.fillElements());
  }

  /** Start (or restart after a new sign-in) with the network's elements for the inject form. */
  start(api, network, canOperate) {
    this.api = api;
    this.canOperate = canOperate;
    this.elements = {
      lines: network.branches.filter((b) => b.kind === "line").map((b) => b.id),
      buses: network.buses.map((b) => b.id),
    };
    this.fillElements();
    this.el("form").hidden = !canOperate;
    this.el("viewer-note").hidden = canOperate;
    if (this.poller === null) this.poller = setInterval(() => this.refresh(), POLL_MS);
    this.refresh();
  }

  /** Stop polling (signed out): a refused token must not re-open the sign-in dialog every few seconds. */
  stop() {
    clearInterval(this.poller);
    clearTimeout(this.timer);
    this.poller = null;
    this.timer = null;
    this.api = null;
    this.loads += 1; // drop the answer of a load in flight
  }

  fillElements() {
    const ids = this.elements?.[this.el("table").value] ?? [];
    this.el("elements").replaceChildren(...ids.map((id) => new Option(id)));
  }

  /** Ask for a reload soon; calls in quick succession share one. */
  refresh() {
    if (this.timer !== null || this.api === null) return;
    const wait = Math.max(0, this.lastLoad + MIN_GAP_MS - Date.now());
    this.timer = setTimeout(() => this.load(), wait);
  }

  async load() {
    this.timer = null;
    this.lastLoad = Date.now();
    const ticket = ++this.loads;
    try {
      const [cases, faults] = await Promise.all([this.api.get("/api/v1/flisr"), this.api.get("/api/v1/faults")]);
      if (ticket !== this.loads) return; // a later load started meanwhile: its answer is newer
      this.cases = new Map(cases.map((c) => [c.id, c]));
      this.faults = faults;
      this.render();
    } catch (e) {
      if (ticket === this.loads) this.onError(e);
    }
  }

  async confirm(caseId) {
    this.pending.add(caseId);
    this.caseErrors.delete(caseId);
    this.renderCases();
    try {
      const done = await this.api.post(`/api/v1/flisr/${encodeURIComponent(caseId)}/confirm`);
      this.cases.set(done.id, done);
    } catch (e) {
      if (e.status === undefined) this.onError(e); // signed out or network down
      else this.caseErrors.set(caseId, e.message);
    } finally {
      this.pending.delete(caseId);
      this.renderCases();
      this.refresh();
    }
  }

  async repair(faultId) {
    this.pending.add(faultId);
    this.renderFaults();
    this.say("fault-error", "");
    try {
      await this.api.post(`/api/v1/faults/${encodeURIComponent(faultId)}/repair`);
    } catch (e) {
      if (e.status === undefined) this.onError(e);
      else this.say("fault-error", e.message);
    } finally {
      this.pending.delete(faultId);
      this.refresh();
    }
  }

  async inject() {
    const request = {
      element: this.el("element").value.trim(),
      table: this.el("table").value,
      fault_type: this.el("type").value,
      permanent: this.el("permanent").checked,
    };
    const submit = this.el("inject");
    submit.disabled = true;
    this.say("form-result", "");
    try {
      const fault = await this.api.post("/api/v1/faults", request);
      this.say("form-result", `${fault.id}: ${fault.fault_type} fault on ${fault.element} injected`);
      this.el("element").value = "";
    } catch (e) {
      if (e.status === undefined) this.onError(e);
      else this.say("form-result", e.message, true);
    } finally {
      submit.disabled = false;
      this.refresh();
    }
  }

  say(part, text, isError = false) {
    const el = this.el(part);
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  render() {
    this.renderCases();
    this.renderFaults();
  }

  renderCases() {
    const cases = [...this.cases.values()].sort((a, b) => b.opened.localeCompare(a.opened)).slice(0, MAX_CASES);
    const waiting = cases.filter((c) => c.status === "awaiting-confirmation").length;
    const open = this.faults.filter((f) => f.repaired == null).length;
    this.el("count").textContent = `${waiting} awaiting confirmation · ${open} fault${open === 1 ? "" : "s"} in the grid`;
    this.el("cases").innerHTML = cases.length
      ? cases.map((c) => this.renderCase(c)).join("")
      : '<p class="muted empty">no FLISR cases: the grid has had no fault</p>';
  }

  renderCase(c) {
    const status = escapeHtml(c.status);
    const confirm = c.status === "awaiting-confirmation" && this.canOperate
      ? `<button type="button" data-confirm="${escapeHtml(c.id)}"${this.pending.has(c.id) ? " disabled" : ""}>Confirm</button>`
      : "";
    const error = this.caseErrors.get(c.id);
    const facts = [];
    if (c.trips.length) facts.push(`trips <b>${c.trips.map(escapeHtml).join(", ")}</b>`);
    facts.push(`planned in <b>${number(c.plan_ms, 1)} ms</b>`);
    if (c.restored_customers != null) { // a return to normal restores no one: it has no figures
      facts.push(
        `restored <b class="good">${number(c.restored_customers)} customers · ${number(c.restored_kw, 1)} kW</b>`,
        `unrestored <b class="${c.unrestored_customers ? "off" : ""}">${number(c.unrestored_customers)} customers</b>`,
      );
    }
    return `<article class="case" data-case-id="${escapeHtml(c.id)}" data-status="${status}">` +
      `<div class="case-head"><span class="case-id">${escapeHtml(c.id)}</span>` +
      `<span class="case-kind">${escapeHtml(c.kind)}</span>` +
      `<span class="status-badge ${status}">${escapeHtml(STATUS_TEXT[c.status] ?? c.status)}</span>` +
      `<span class="muted case-time">${timeOf(c.opened)}</span>${confirm}</div>` +
      `<div class="case-facts">${facts.map((f) => `<span>${f}</span>`).join("")}</div>` +
      (c.message ? `<p class="case-message">${escapeHtml(c.message)}</p>` : "") +
      `<ol class="steps">${c.steps.map((s) => renderStep(s, c.status)).join("")}</ol>` +
      (error ? `<p class="error case-error" role="alert">${escapeHtml(error)}</p>` : "") +
      "</article>";
  }

  renderFaults() {
    const body = this.el("faults").tBodies[0];
    if (!this.faults.length) {
      body.innerHTML = '<tr><td colspan="6" class="muted">no faults injected</td></tr>';
      return;
    }
    body.innerHTML = this.faults.slice(0, MAX_FAULTS).map((f) => {
      const repaired = f.repaired != null;
      const action = !repaired && this.canOperate
        ? `<button type="button" data-repair="${escapeHtml(f.id)}"${this.pending.has(f.id) ? " disabled" : ""}>Repair</button>`
        : "";
      const state = repaired
        ? `${timeOf(f.repaired)}<small>by ${escapeHtml(f.repaired_by ?? "—")}</small>`
        : '<span class="in-grid">in the grid</span>';
      return `<tr data-fault-id="${escapeHtml(f.id)}" class="${repaired ? "repaired" : ""}">` +
        `<td>${escapeHtml(f.id)}</td>` +
        `<td>${escapeHtml(f.element)}<small>${escapeHtml(f.table === "buses" ? "bus" : "line")}</small></td>` +
        `<td>${escapeHtml(f.fault_type)}<small>${f.permanent ? "permanent" : "temporary"}</small></td>` +
        `<td>${timeOf(f.injected)}<small>by ${escapeHtml(f.injected_by)}</small></td>` +
        `<td class="fault-state">${state}</td><td>${action}</td></tr>`;
    }).join("");
  }
}
