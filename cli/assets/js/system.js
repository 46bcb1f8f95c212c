// System metrics (system/...: CPU, memory, disk, network, GPUs), sampled by time, not step:
// one panel per metric in the "System" group, the selected runs overlaid against wall time
// (whatever the x axis of the step metrics), with where each resumed attempt started. Smoothing
// and the log scale apply as in the step panels; grouped by a config key, each group's mean and
// band are drawn against time since each run's first sample, without attempt markers (they
// belong to single runs, as in the grouped step panels).

import { view, api, OUTCOME_COLOURS } from './common.js';
import { chartWidth } from './series.js';
import { build, fetchCached, groupPlan, pushRunCurve } from './charts.js';

export function systemOfSelection() {
  const metrics = [];
  for (const entry of view.selected.values()) {
    for (const metric of entry.detail ? entry.detail.system || [] : []) if (!metrics.includes(metric)) metrics.push(metric);
  }
  return metrics;
}

// A run's samples of `metric`, downsampled by the server to the chart's pixel columns of its
// time span: x in seconds since 1970.
async function fetchSystem(id, metric, width) {
  const params = new URLSearchParams({ metric, width: Math.min(8192, Math.round(width * (window.devicePixelRatio || 1))) });
  const series = await api(`/api/runs/${encodeURIComponent(id)}/system?${params}`);
  return { steps: series.x, values: series.values, samples: series.samples };
}

export async function drawSystemPanel(metric, panel) {
  const version = ++panel.version;
  const runs = [...view.selected.entries()].filter(([, entry]) => entry.detail && (entry.detail.system || []).includes(metric));
  const width = chartWidth(panel.el);
  // Samples arrive without new rows: a run's update time says when to fetch again.
  const key = JSON.stringify([runs.map(([id, entry]) => [id, entry.row.updated_at, entry.row.rows, entry.row.state]), width]);
  const results = await fetchCached(panel, version, key, metric, runs, (id) => fetchSystem(id, metric, width));
  if (!results) return;
  if (view.groupBy) {
    const elapsed = results.map((result) => ({ steps: result.steps.map((x) => x - result.steps[0]), values: result.values }));
    build(metric, panel, { ...groupPlan(runs, elapsed, columnsFor(elapsed, width)), xAxis: 'elapsed' });
  } else {
    const tables = [];
    const series = [];
    const markers = [];
    runs.forEach(([id, entry], i) => {
      pushRunCurve(tables, series, id, entry.colour, results[i]);
      markers.push(...attemptStarts(id, entry.detail));
    });
    build(metric, panel, { tables, series, markers, forks: [], checkpoints: [], bands: [], xAxis: 'time' });
  }
  panel.el.dataset.system = 'true';
  panel.el.dataset.samples = String(results.reduce((sum, result) => sum + result.samples, 0));
}

// How many columns a group's mean is taken over: no more than the chart's width, and none
// narrower than the spacing of the sparsest run's points. Runs sample on clocks of their own, so
// in narrower columns (groupSeries makes them a second wide for short runs) each column would hold
// one run's sample and the "mean" would jump from run to run.
function columnsFor(tables, width) {
  let span = 0;
  let spacing = 0;
  for (const { steps } of tables) {
    if (steps.length < 2) continue;
    const last = steps[steps.length - 1];
    span = Math.max(span, last);
    spacing = Math.max(spacing, last / (steps.length - 1));
  }
  return spacing > 0 ? Math.max(1, Math.min(width, Math.floor(span / spacing))) : width;
}

// Where each attempt after the first started, in seconds since 1970, coloured by how the
// attempt before it ended: a machine that was lost shows as a gap before the marker.
function attemptStarts(id, detail) {
  const attempts = detail.attempts;
  const markers = [];
  for (let i = 1; i < attempts.length; i++) {
    const outcome = attempts[i - 1].outcome || 'crashed';
    markers.push({ run: id, x: attempts[i].started_at / 1000, colour: OUTCOME_COLOURS[outcome] || '#9e9e9e',
      text: `${id}: attempt ${attempts[i].number} started after ${outcome}` });
  }
  return markers;
}
