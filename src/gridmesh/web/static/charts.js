// A small SVG time-series chart: one line (the value or bucket mean), an optional min–max band,
// optional overlay lines with a legend, a time axis and a value axis with "nice" ticks.

const SVG = "http://www.w3.org/2000/svg";
const M = { left: 56, right: 12, top: 24, bottom: 24 };

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  parent?.appendChild(node);
  return node;
}

/** About `count` round tick values from at or below `lo` to at or above `hi` (1, 2, 5 × 10^k steps). */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.floor(lo / step) * step; t < hi + step; t += step) ticks.push(Number(t.toFixed(12)));
  return ticks;
}

function formatValue(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (a >= 100) return v.toFixed(0);
  return Number(v.toPrecision(3)).toString();
}

function formatTime(ms, spanMs) {
  const d = new Date(ms);
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  return spanMs > 36 * 3600e3 ? `${d.getDate()}.${d.getMonth() + 1}. ${hm}` : hm;
}

/** A one-row legend of the overlay lines, right-aligned above the plot (labels measured once drawn). */
function drawLegend(svg, lines, width) {
  const SWATCH = 14, GAP = 4, SPACING = 12;
  const legend = el("g", { class: "legend" }, svg);
  const labels = lines.map((line) => {
    const label = el("text", { y: 12 }, legend);
    label.textContent = line.label ?? "";
    return label;
  });
  const widths = labels.map((label) => SWATCH + GAP + label.getComputedTextLength());
  let x = width - M.right - widths.reduce((sum, w) => sum + w + SPACING, -SPACING);
  lines.forEach((line, i) => {
    el("line", { x1: x, x2: x + SWATCH, y1: 8, y2: 8, stroke: line.colour, "stroke-dasharray": line.dash ?? "none" }, legend);
    labels[i].setAttribute("x", x + SWATCH + GAP);
    x += widths[i] + SPACING;
  });
}

/**
 * Draw `series` ({t: ISO strings or ms, value: numbers, min?, max?, lines?}) into `svg`. `lines` are
 * overlays on the same time axis: [{value: numbers, colour, label, dash?}], each a polyline in the legend.
 * `options`: colour, unit, empty (text shown without data).
 */
export function drawChart(svg, series, options = {}) {
  const colour = options.colour ?? "#0ea5e9";
  const width = svg.clientWidth || 600;
  const height = svg.clientHeight || 210;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const times = (series?.t ?? []).map((t) => (typeof t === "number" ? t : Date.parse(t)));
  const values = series?.value ?? [];
  const overlays = values.length ? (series.lines ?? []) : [];
  svg.dataset.points = String(values.length);
  svg.dataset.lines = String(overlays.length);
  if (values.length === 0) {
    el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty-text" }, svg).textContent =
      options.empty ?? "no data in this window";
    return;
  }
  const lows = series.min ?? values;
  const highs = series.max ?? values;
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 60e3);
  const overlayValues = overlays.flatMap((line) => line.value);
  const lo = Math.min(...lows, ...overlayValues);
  const hi = Math.max(...highs, ...overlayValues);
  const ticksY = niceTicks(lo, hi);
  const y0 = Math.min(ticksY[0], lo);
  const y1 = Math.max(ticksY[ticksY.length - 1], hi);
  const px = (t) => M.left + ((t - t0) / (t1 - t0)) * (width - M.left - M.right);
  const py = (v) => height - M.bottom - ((v - y0) / (y1 - y0 || 1)) * (height - M.top - M.bottom);

  const grid = el("g", { class: "grid" }, svg);
  const axis = el("g", { class: "axis" }, svg);
  for (const v of ticksY) {
    el("line", { x1: M.left, x2: width - M.right, y1: py(v), y2: py(v) }, grid);
    el("text", { x: M.left - 6, y: py(v) + 4, "text-anchor": "end" }, axis).textContent = formatValue(v);
  }
  if (options.unit) {
    el("text", { x: 4, y: 12 }, axis).textContent = options.unit;
  }
  const ticksT = niceTicks(t0 / 60e3, t1 / 60e3, Math.max(2, Math.floor(width / 110))).map((m) => m * 60e3);
  for (const t of ticksT) {
    if (t < t0 || t > t1) continue;
    el("text", { x: px(t), y: height - 6, "text-anchor": "middle" }, axis).textContent = formatTime(t, t1 - t0);
  }

  if (series.min && series.max) {
    const upper = times.map((t, i) => `${px(t)},${py(highs[i])}`);
    const lower = times.map((t, i) => `${px(t)},${py(lows[i])}`).reverse();
    el("polygon", { points: [...upper, ...lower].join(" "), class: "band", fill: colour }, svg);
  }
  const points = (ys) => times.map((t, i) => `${px(t).toFixed(1)},${py(ys[i]).toFixed(1)}`).join(" ");
  el("polyline", { points: points(values), class: "series", stroke: colour }, svg);
  const last = times.length - 1;
  el("circle", { cx: px(times[last]), cy: py(values[last]), r: 3.5, fill: colour }, svg);
  for (const line of overlays) {
    el("polyline", {
      points: points(line.value), class: "series overlay", stroke: line.colour, "stroke-dasharray": line.dash ?? "none",
    }, svg);
  }
  if (overlays.length) drawLegend(svg, overlays, width);
}
