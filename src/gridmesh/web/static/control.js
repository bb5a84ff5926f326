// The control panel: what the live control cycle decided in its latest steps (battery setpoints,
// curtailment, refusals by the safety layer or the command service, failed controllers, cycle time).
// The cycle acts every 15 simulated minutes, so polling the REST API every few seconds is plenty.

import { escapeHtml } from "./network.js";
import { PollingPanel, timeOf } from "./panels.js";

const POLL_MS = 5000;
const STEPS = 8;

function kw(value) {
  return `${value.toLocaleString([], { maximumFractionDigits: 1, signDisplay: "exceptZero" })} kW`;
}

function setpoints(step) {
  const entries = Object.entries(step.setpoints_kw);
  if (!entries.length) return '<span class="muted">no batteries</span>';
  return entries.map(([id, p]) =>
    `<span class="chip ${p > 0 ? "discharge" : p < 0 ? "charge" : "idle"}" title="${escapeHtml(id)}">` +
    `${escapeHtml(id)} ${escapeHtml(kw(p))}</span>`).join(" ");
}

function curtailed(step) {
  const entries = Object.entries(step.curtailed_kw);
  return entries.length
    ? entries.map(([id, p]) => `${escapeHtml(id)} ${escapeHtml(kw(p))}`).join(", ")
    : '<span class="muted">none</span>';
}

function refusals(step) {
  const parts = [
    ...step.failed.map((f) => `<span class="bad">${escapeHtml(f)}</span>`),
    ...step.refusals.map((r) => `${escapeHtml(r.device)}: ${escapeHtml(r.reason)}` +
      ` (${escapeHtml(kw(r.requested_kw))} asked)`),
  ];
  return parts.length ? parts.join("<br>") : '<span class="muted">—</span>';
}

/** The panel; `api` is set on sign-in. */
export class ControlPanel extends PollingPanel {
  constructor(root, onError) {
    super(root, onError);
  }

  start(api) { this.poll(api, POLL_MS); }

  fetch(api) { return api.get("/api/v1/control", { limit: STEPS }); }

  render(control) {
    this.el("controllers").textContent = control.enabled
      ? `${control.controllers.join(" › ")} · every ${control.step_minutes} min`
      : "no controller (start with --controller)";
    const body = this.el("steps").querySelector("tbody");
    if (!control.steps.length) {
      const text = control.enabled ? "waiting for the first control step…" : "live control is off";
      body.innerHTML = `<tr><td colspan="5" class="muted empty">${escapeHtml(text)}</td></tr>`;
      return;
    }
    body.innerHTML = control.steps.map((step) =>
      `<tr data-time="${escapeHtml(step.time)}"><td>${escapeHtml(timeOf(step.time))}</td>` +
      `<td>${setpoints(step)}</td><td>${curtailed(step)}</td><td>${refusals(step)}</td>` +
      `<td class="num">${step.cycle_ms.toFixed(0)} ms · ${step.commands} cmd</td></tr>`).join("");
  }
}
