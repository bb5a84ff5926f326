// The dashboard: signs in with a token, loads the network and the latest data over REST, then follows
// the WebSocket stream (state and alarm messages) for live updates.

import { Api, Unauthorized, connectStream, forgetToken, initialToken, saveToken } from "./api.js";
import { drawChart } from "./charts.js";
import { ControlPanel } from "./control.js";
import { CoordinationPanel } from "./coordination.js";
import { DrPanel } from "./dr.js";
import { EvPanel } from "./ev.js";
import { SelfHealingPanel } from "./flisr.js";
import { NetworkMap } from "./network.js";
import { AlarmTable, renderCounters, renderSites } from "./panels.js";

const $ = (id) => document.getElementById(id);
const SUBSTATION_WINDOW_MS = 3600e3;
const COUNTER_REFRESH_MS = 5000;
const CHART_POINTS = 240;

const ui = {
  map: new NetworkMap($("network"), $("tooltip")),
  alarms: new AlarmTable($("alarms"), $("alarm-count"), acknowledge),
  selfHealing: new SelfHealingPanel($("self-healing"), showError),
  control: new ControlPanel($("control"), showError),
  ev: new EvPanel($("ev-charging"), showError),
  dr: new DrPanel($("demand-response"), showError),
  coordination: new CoordinationPanel($("coordination"), showError),
  siteNames: new Map(),
  substation: { t: [], value: [] },
  deviceSeries: null,
  devices: [],
  lastCounters: 0,
};

let api = null;
let stopStream = null;

function setConnection(state, text) {
  $("conn").dataset.state = state;
  $("conn-text").textContent = text;
}

function askForToken(message = "") {
  stopStream?.();
  ui.selfHealing.stop();
  ui.control.stop();
  ui.ev.stop();
  ui.dr.stop();
  ui.coordination.stop();
  setConnection("refused", "signed out");
  $("token-error").textContent = message;
  $("token-input").value = "";
  if (!$("token-dialog").open) $("token-dialog").showModal();
}

function showError(error) {
  if (error instanceof Unauthorized) {
    forgetToken();
    askForToken(`${error.message}: paste a valid token`);
  } else {
    console.error(error);
    setConnection("retrying", error.message);
  }
}

// ----- state ---------------------------------------------------------------------------------------

function showState(state) {
  ui.map.setState(state);
  renderSites($("sites"), state.sites, ui.siteNames);
  const time = new Date(state.time);
  ui.gridTime = time.getTime();
  $("state-time").textContent = `state ${time.toLocaleTimeString([], { hour12: false })}`;
  document.body.dataset.stateTime = state.time;
  const est = state.estimator;
  const estimator = $("estimator");
  if (est) {
    const bad = !est.observable || est.j > est.threshold || est.suspects.length > 0;
    estimator.classList.toggle("bad", bad);
    estimator.textContent = est.observable
      ? `estimator J ${est.j.toFixed(1)} / ${est.threshold.toFixed(1)} · ${est.cycle_ms.toFixed(1)} ms` +
        (est.suspects.length ? ` · suspect: ${est.suspects.slice(0, 3).join(", ")}` : "")
      : "estimator: not observable";
    estimator.title = est.problem || "";
  }
  $("substation-now").textContent = `${state.substation_p_kw.toFixed(1)} kW · ${state.substation_q_kvar.toFixed(1)} kvar`;
  appendSubstation(Date.parse(state.time), state.substation_p_kw);
  if (Date.now() - ui.lastCounters > COUNTER_REFRESH_MS) refreshCounters();
}

function appendSubstation(t, p) {
  const s = ui.substation;
  if (s.t.length && t <= s.t[s.t.length - 1]) return;
  s.t.push(t);
  s.value.push(p);
  while (s.t.length && s.t[0] < t - SUBSTATION_WINDOW_MS) { s.t.shift(); s.value.shift(); }
  drawChart($("substation-chart"), s, { unit: "kW", colour: "#6366f1" });
}

async function refreshCounters() {
  ui.lastCounters = Date.now();
  try { renderCounters($("counters"), await api.get("/api/v1/counters")); } catch (e) { showError(e); }
}

// ----- device chart --------------------------------------------------------------------------------

function fillSelect(select, options, selected) {
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value, false, value === selected)));
}

async function loadDevices() {
  const site = $("pick-site").value;
  ui.devices = await api.get("/api/v1/devices", { site });
  const preferred = ui.devices.find((d) => d.kind === "battery") ?? ui.devices[0];
  fillSelect($("pick-device"), ui.devices.map((d) => [d.id, `${d.id}${d.online ? "" : " (offline)"}`]), preferred?.id);
  fillQuantities();
}

function fillQuantities() {
  const device = ui.devices.find((d) => d.id === $("pick-device").value);
  const reports = device?.reports ?? [];
  fillSelect($("pick-quantity"), reports.map((q) => [q, q]), reports.includes("TotW") ? "TotW" : reports[0]);
  loadDeviceSeries();
}

async function loadDeviceSeries() {
  const device = $("pick-device").value;
  const quantity = $("pick-quantity").value;
  if (!device || !quantity) {
    drawChart($("device-chart"), null, { empty: "pick a device" });
    return;
  }
  const hours = Number($("pick-window").value);
  const end = gridNow();
  const start = new Date(end.getTime() - hours * 3600e3);
  const every = Math.max(1, Math.round((hours * 3600) / CHART_POINTS));
  try {
    const series = await api.get("/api/v1/history", {
      device, quantity, start: start.toISOString(), end: end.toISOString(), every: `PT${every}S`,
    });
    ui.deviceSeries = { device, quantity, unit: series.unit, t: series.t.map(Date.parse), value: series.value };
    drawDeviceSeries();
  } catch (e) {
    showError(e);
  }
}

/** The grid's time: the last state's (an accelerated run is ahead of the wall clock), one second on. */
function gridNow() {
  return new Date((ui.gridTime ?? Date.now()) + 1000);
}

function drawDeviceSeries() {
  const s = ui.deviceSeries;
  drawChart($("device-chart"), s, { unit: `${s.quantity} [${s.unit}]`, colour: "#0ea5e9" });
}

/** Live readings (pushed within tens of ms of arrival): extend the selected device's chart. */
function showReadings(readings) {
  const s = ui.deviceSeries;
  if (!s) return;
  let added = false;
  for (let i = 0; i < readings.device.length; i += 1) {
    if (readings.device[i] === s.device && readings.quantity[i] === s.quantity && readings.phase[i] === "") {
      const t = readings.t[i] * 1000;
      if (!s.t.length || t > s.t[s.t.length - 1]) {
        s.t.push(t);
        s.value.push(readings.value[i]);
        added = true;
      }
    }
  }
  if (added) drawDeviceSeries();
}

// ----- alarms --------------------------------------------------------------------------------------

async function acknowledge(id, button) {
  try {
    ui.alarms.upsert(await api.post(`/api/v1/alarms/${encodeURIComponent(id)}/acknowledge`));
  } catch (e) {
    button.disabled = false;
    showError(e);
  }
}

// ----- start ---------------------------------------------------------------------------------------

async function start(token) {
  api = new Api(token);
  let me;
  try {
    me = await api.get("/api/v1/whoami");
  } catch (e) {
    if (e instanceof Unauthorized) { forgetToken(); askForToken(`${e.message}: paste a valid token`); return; }
    throw e;
  }
  $("role").textContent = `${me.role} · ${me.name}`;
  const canOperate = me.role === "operator" || me.role === "admin";
  ui.alarms.canAcknowledge = canOperate;

  const network = await api.get("/api/v1/network");
  ui.siteNames = new Map(network.sites.map((s) => [s.id, s.name]));
  $("grid-name").textContent = network.name;
  $("network-info").textContent = `${network.buses.length.toLocaleString()} buses · ${network.branches.length.toLocaleString()} branches`;
  ui.map.setNetwork(network);
  ui.selfHealing.start(api, network, canOperate);
  ui.control.start(api);
  ui.ev.start(api);
  ui.dr.start(api, network, canOperate);
  ui.coordination.start(api, canOperate);

  const state = await api.get("/api/v1/state").catch((e) => { if (e.status === 503) return null; throw e; });
  if (state) ui.gridTime = Date.parse(state.time);
  const end = gridNow();
  const [history, alarms] = await Promise.all([
    api.get("/api/v1/substation/history", {
      start: new Date(end.getTime() - SUBSTATION_WINDOW_MS).toISOString(), end: end.toISOString(), every: "PT1M",
    }),
    api.get("/api/v1/alarms", { active_only: false }),
  ]);
  ui.substation = { t: history.t.map(Date.parse), value: history.value };
  drawChart($("substation-chart"), ui.substation, { unit: "kW", colour: "#6366f1", empty: "no substation data yet" });
  ui.alarms.replaceAll(alarms);
  if (state) showState(state);
  refreshCounters();

  const sites = network.sites.filter((s) => s.level === 1).map((s) => [s.id, s.name]);
  fillSelect($("pick-site"), [...sites, ["grid", "outside microgrids"]], sites[0]?.[0] ?? "grid");
  $("pick-site").onchange = () => loadDevices().catch(showError);
  $("pick-device").onchange = fillQuantities;
  $("pick-quantity").onchange = loadDeviceSeries;
  $("pick-window").onchange = loadDeviceSeries;
  await loadDevices();

  stopStream = connectStream(token, {
    onMessage: (message) => {
      if (message.type === "state") { showState(message.data); ui.selfHealing.refresh(); }
      else if (message.type === "alarm") { ui.alarms.upsert(message.data); ui.selfHealing.refresh(); }
      else if (message.type === "readings") showReadings(message.data);
    },
    onStatus: setConnection,
    onRefused: () => { forgetToken(); askForToken("the server refused the token"); },
  });
}

$("token-form").addEventListener("submit", () => {
  const token = $("token-input").value.trim();
  saveToken(token);
  start(token).catch(showError);
});
$("sign-out").addEventListener("click", () => { forgetToken(); askForToken(); });

const token = initialToken();
if (token) start(token).catch(showError);
else askForToken();
