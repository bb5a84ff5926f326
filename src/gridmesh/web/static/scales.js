// Colour scales, quantised into buckets so that the map draws one path per colour.
// Voltage: blue at or below 0.94 pu, green at 1.00 pu, red at or above 1.06 pu, in 0.01 pu steps.
// Loading: slate when idle, green at 50 %, yellow at 80 %, red at 100 % and above, in 10 % steps.

export const NO_DATA = "#475569";

const VOLTAGE_STOPS = [[0.94, [37, 99, 235]], [1.0, [34, 197, 94]], [1.06, [239, 68, 68]]];
const LOADING_STOPS = [[0, [100, 116, 139]], [50, [34, 197, 94]], [80, [250, 204, 21]], [100, [239, 68, 68]]];

function interpolate(stops, x) {
  if (x <= stops[0][0]) return stops[0][1];
  for (let i = 1; i < stops.length; i++) {
    const [x1, c1] = stops[i];
    if (x <= x1) {
      const [x0, c0] = stops[i - 1];
      const t = (x - x0) / (x1 - x0);
      return c0.map((c, k) => Math.round(c + t * (c1[k] - c)));
    }
  }
  return stops[stops.length - 1][1];
}

const cache = new Map();

function bucketColour(stops, step, x) {
  const key = `${stops === VOLTAGE_STOPS ? "v" : "l"}${Math.round(x / step)}`;
  let colour = cache.get(key);
  if (!colour) {
    const [r, g, b] = interpolate(stops, Math.round(x / step) * step);
    colour = `rgb(${r},${g},${b})`;
    cache.set(key, colour);
  }
  return colour;
}

export function voltageColour(vPu) {
  return vPu == null ? NO_DATA : bucketColour(VOLTAGE_STOPS, 0.01, Math.min(Math.max(vPu, 0.94), 1.06));
}

export function loadingColour(pct) {
  return pct == null ? NO_DATA : bucketColour(LOADING_STOPS, 10, Math.min(Math.max(pct, 0), 100));
}
