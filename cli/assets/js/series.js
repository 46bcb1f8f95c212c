// Chart data: fetching downsampled curves, smoothing, aligning runs on one x axis, group means.

import { api } from './common.js';

export function chartWidth(panel) {
  return Math.max(200, Math.floor(panel.clientWidth - 20));
}

// A run's curve of `metric`, downsampled to the chart's pixel columns in the x axis `x`.
// Against runtime or time the answer has an `x` column (seconds); its points then go by x.
export async function fetchSeries(id, metric, range, width, x) {
  const params = new URLSearchParams({ metric, width: Math.min(8192, Math.round(width * (window.devicePixelRatio || 1))) });
  if (x && x !== 'step') params.set('x', x);
  if (range) {
    params.set('from', Math.max(0, Math.floor(range[0])));
    params.set('to', Math.max(0, Math.ceil(range[1])));
  }
  const series = await api(`/api/runs/${encodeURIComponent(id)}/series?${params}`);
  if (series.x) {
    series.stepOf = series.steps;
    series.steps = series.x;
    for (const branch of series.branches) { branch.stepOf = branch.steps; branch.steps = branch.x; }
  }
  return series;
}

// Where step `step` is on the chart's x axis, from a curve fetched against it: the x of the
// curve's first point at or after it (the step itself on the step axis).
export function stepToX(series, step) {
  if (!series.stepOf) return step;
  const i = series.stepOf.findIndex((s) => s >= step);
  return i < 0 ? null : series.steps[i];
}

// TensorBoard's exponential moving average, debiased so the start is not pulled towards 0.
export function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value == null || !Number.isFinite(value)) { out[i] = value; continue; }
    last = last * weight + (1 - weight) * value;
    count++;
    out[i] = last / (1 - Math.pow(weight, count));
  }
  return out;
}

export function positiveOnly(values) {
  return values.map((value) => (value != null && value > 0 ? value : null));
}

// Puts series with their own steps on one x axis: the union of the steps, null where a
// series has no point (drawn across, since every series spans gaps).
export function align(tables) {
  const xs = [...new Set(tables.flatMap((table) => table.steps))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const columns = tables.map((table) => {
    const column = new Array(xs.length).fill(null);
    table.steps.forEach((step, i) => { column[index.get(step)] = table.values[i]; });
    return column;
  });
  return [xs, ...columns];
}

// The value nearest to `index` in an aligned column: the runs have points at different steps,
// so at the hovered step most columns are empty.
export function nearest(column, index) {
  if (index == null) return null;
  for (let distance = 1; distance < column.length; distance++) {
    const before = column[index - distance];
    if (before != null) return before;
    const after = column[index + distance];
    if (after != null) return after;
    if (index - distance < 0 && index + distance >= column.length) break;
  }
  return null;
}

export function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// Per group: the mean over the group's runs of each run's mean in each of `width` step
// columns, and the lowest and highest of those run means.
export function groupSeries(tables, width) {
  const steps = tables.flatMap((table) => table.steps);
  if (!steps.length) return { steps: [], mean: [], low: [], high: [] };
  const first = Math.min(...steps);
  const last = Math.max(...steps);
  const span = last - first + 1;
  const columns = Math.max(1, Math.min(width, span));
  const perRun = tables.map((table) => {
    const sums = new Float64Array(columns);
    const counts = new Uint32Array(columns);
    table.steps.forEach((step, i) => {
      const c = Math.min(columns - 1, Math.floor(((step - first) * columns) / span));
      sums[c] += table.values[i];
      counts[c]++;
    });
    return { sums, counts };
  });
  const out = { steps: [], mean: [], low: [], high: [] };
  for (let c = 0; c < columns; c++) {
    const means = perRun.filter((run) => run.counts[c]).map((run) => run.sums[c] / run.counts[c]);
    if (!means.length) continue;
    const x = first + ((c + 0.5) * span) / columns;
    out.steps.push(Number.isInteger(first) && Number.isInteger(last) ? Math.round(x) : x);
    out.mean.push(means.reduce((a, b) => a + b, 0) / means.length);
    out.low.push(Math.min(...means));
    out.high.push(Math.max(...means));
  }
  return out;
}
