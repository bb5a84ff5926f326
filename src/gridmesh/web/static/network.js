// The network map: buses at their coordinates coloured by voltage, branches coloured by loading.
// Thousands of elements draw fast because each colour bucket is one canvas path (one stroke or fill call
// per colour, not per element). Hover shows the nearest bus or branch; wheel zooms, drag pans.

import { loadingColour, voltageColour, NO_DATA } from "./scales.js";

const HOVER_PX = 8;

export class NetworkMap {
  constructor(canvas, tooltip) {
    this.canvas = canvas;
    this.tooltip = tooltip;
    this.ctx = canvas.getContext("2d");
    this.network = null;
    this.state = null;
    this.view = { scale: 1, dx: 0, dy: 0 };
    this.screen = null; // Float32Array of bus screen x, y (NaN where no coordinates)
    new ResizeObserver(() => this.draw()).observe(canvas);
    this.#bindPointer();
  }

  setNetwork(network) {
    this.network = network;
    this.index = new Map(network.buses.map((b, i) => [b.id, i]));
    this.ends = network.branches.map((br) => [this.index.get(br.from_bus), this.index.get(br.to_bus)]);
    this.#project();
    this.draw();
  }

  setState(state) {
    this.state = state;
    this.draw();
  }

  /** World coordinates; longitude is shrunk by cos(latitude) so that maps are not stretched. */
  #project() {
    const buses = this.network.buses.filter((b) => b.x != null && b.y != null);
    const xs = buses.map((b) => b.x);
    const ys = buses.map((b) => b.y);
    const lonLat = xs.every((x) => Math.abs(x) <= 180) && ys.every((y) => Math.abs(y) <= 90);
    const meanY = ys.reduce((a, b) => a + b, 0) / Math.max(ys.length, 1);
    this.xFactor = lonLat ? Math.cos((meanY * Math.PI) / 180) : 1;
    this.world = this.network.buses.map((b) => (b.x == null || b.y == null ? null : [b.x * this.xFactor, b.y]));
    const wx = this.world.filter(Boolean).map((p) => p[0]);
    const wy = this.world.filter(Boolean).map((p) => p[1]);
    this.bounds = wx.length
      ? { x0: Math.min(...wx), x1: Math.max(...wx), y0: Math.min(...wy), y1: Math.max(...wy) }
      : { x0: 0, x1: 1, y0: 0, y1: 1 };
  }

  #fit(width, height) {
    const pad = 24;
    const { x0, x1, y0, y1 } = this.bounds;
    const k = Math.min((width - 2 * pad) / Math.max(x1 - x0, 1e-9), (height - 2 * pad) / Math.max(y1 - y0, 1e-9));
    const ox = (width - k * (x1 - x0)) / 2;
    const oy = (height - k * (y1 - y0)) / 2;
    return (p) => [ox + (p[0] - x0) * k, height - (oy + (p[1] - y0) * k)];
  }

  draw() {
    if (!this.network) return;
    const dpr = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (width === 0 || height === 0) return;
    if (this.canvas.width !== Math.round(width * dpr)) this.canvas.width = Math.round(width * dpr);
    if (this.canvas.height !== Math.round(height * dpr)) this.canvas.height = Math.round(height * dpr);
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const fit = this.#fit(width, height);
    const { scale, dx, dy } = this.view;
    const n = this.world.length;
    const screen = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      const p = this.world[i];
      if (!p) { screen[2 * i] = NaN; screen[2 * i + 1] = NaN; continue; }
      const [x, y] = fit(p);
      screen[2 * i] = x * scale + dx;
      screen[2 * i + 1] = y * scale + dy;
    }
    this.screen = screen;

    const loading = this.state?.loading_pct;
    const branchPaths = new Map();
    let drawnBranches = 0;
    this.ends.forEach(([a, b], i) => {
      if (a === undefined || b === undefined || Number.isNaN(screen[2 * a]) || Number.isNaN(screen[2 * b])) return;
      const colour = loading ? loadingColour(loading[i]) : NO_DATA;
      let path = branchPaths.get(colour);
      if (!path) branchPaths.set(colour, (path = new Path2D()));
      path.moveTo(screen[2 * a], screen[2 * a + 1]);
      path.lineTo(screen[2 * b], screen[2 * b + 1]);
      drawnBranches++;
    });
    ctx.lineWidth = n > 1000 ? 1.2 : 2.5;
    ctx.lineCap = "round";
    for (const [colour, path] of branchPaths) { ctx.strokeStyle = colour; ctx.stroke(path); }

    const v = this.state?.v_pu;
    const r = n > 1000 ? 1.6 + Math.min(scale, 6) * 0.4 : 5;
    const busPaths = new Map();
    let drawn = 0;
    for (let i = 0; i < n; i++) {
      const x = screen[2 * i];
      const y = screen[2 * i + 1];
      if (Number.isNaN(x) || x < -r || y < -r || x > width + r || y > height + r) continue;
      const colour = v ? voltageColour(v[i]) : NO_DATA;
      let path = busPaths.get(colour);
      if (!path) busPaths.set(colour, (path = new Path2D()));
      if (n > 1000) path.rect(x - r, y - r, 2 * r, 2 * r);
      else { path.moveTo(x + r, y); path.arc(x, y, r, 0, 2 * Math.PI); }
      drawn++;
    }
    for (const [colour, path] of busPaths) { ctx.fillStyle = colour; ctx.fill(path); }

    this.canvas.dataset.drawnBuses = String(drawn);
    this.canvas.dataset.drawnBranches = String(drawnBranches);
    if (this.state) {
      this.canvas.dataset.stateTime = this.state.time;
      this.canvas.dataset.ready = "true";
    }
  }

  #nearestBus(mx, my) {
    let best = -1;
    let bestD = HOVER_PX * HOVER_PX;
    const s = this.screen;
    for (let i = 0; i < s.length / 2; i++) {
      const ddx = s[2 * i] - mx;
      const ddy = s[2 * i + 1] - my;
      const d = ddx * ddx + ddy * ddy;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  #nearestBranch(mx, my) {
    let best = -1;
    let bestD = (HOVER_PX / 2) ** 2;
    const s = this.screen;
    this.ends.forEach(([a, b], i) => {
      if (a === undefined || b === undefined) return;
      const ax = s[2 * a], ay = s[2 * a + 1], bx = s[2 * b], by = s[2 * b + 1];
      const lx = bx - ax, ly = by - ay;
      const len = lx * lx + ly * ly;
      const t = len > 0 ? Math.max(0, Math.min(1, ((mx - ax) * lx + (my - ay) * ly) / len)) : 0;
      const px = ax + t * lx - mx, py = ay + t * ly - my;
      const d = px * px + py * py;
      if (d < bestD) { bestD = d; best = i; }
    });
    return best;
  }

  #hover(mx, my) {
    if (!this.screen) return;
    const bus = this.#nearestBus(mx, my);
    let html = null;
    if (bus >= 0) {
      const b = this.network.buses[bus];
      const v = this.state?.v_pu?.[bus];
      html = `<b>${escapeHtml(b.id)}</b><br>${v == null ? "voltage unknown" : `${v.toFixed(3)} pu`}` +
        ` · ${b.vn_kv} kV${b.site ? `<br>site ${escapeHtml(b.site)}` : ""}`;
    } else {
      const br = this.#nearestBranch(mx, my);
      if (br >= 0) {
        const b = this.network.branches[br];
        const l = this.state?.loading_pct?.[br];
        html = `<b>${escapeHtml(b.id)}</b> (${b.kind})<br>${l == null ? "loading unknown" : `${l.toFixed(1)} % loaded`}`;
      }
    }
    this.tooltip.hidden = html === null;
    if (html !== null) {
      this.tooltip.innerHTML = html;
      const w = this.canvas.clientWidth;
      this.tooltip.style.left = `${Math.min(mx + 14, w - this.tooltip.offsetWidth - 6)}px`;
      this.tooltip.style.top = `${my + 14}px`;
    }
  }

  #bindPointer() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const k = Math.exp(-e.deltaY * 0.0015);
      const scale = Math.min(Math.max(this.view.scale * k, 0.5), 200);
      const f = scale / this.view.scale;
      this.view = { scale, dx: e.offsetX - (e.offsetX - this.view.dx) * f, dy: e.offsetY - (e.offsetY - this.view.dy) * f };
      this.draw();
    }, { passive: false });
    c.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, dx: this.view.dx, dy: this.view.dy }; c.classList.add("panning"); });
    window.addEventListener("pointerup", () => { drag = null; c.classList.remove("panning"); });
    c.addEventListener("pointermove", (e) => {
      if (drag) {
        this.view = { ...this.view, dx: drag.dx + e.clientX - drag.x, dy: drag.dy + e.clientY - drag.y };
        this.draw();
      } else {
        this.#hover(e.offsetX, e.offsetY);
      }
    });
    c.addEventListener("pointerleave", () => { this.tooltip.hidden = true; });
    c.addEventListener("dblclick", () => { this.view = { scale: 1, dx: 0, dy: 0 }; this.draw(); });
  }
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
