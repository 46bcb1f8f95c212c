// One uPlot chart per metric: the selected runs overlaid (or grouped), attempt markers,
// archived branches, fork ranges; zooming fetches the range again. The system metrics follow,
// in a group of their own drawn against wall time, or time since start when grouped (system.js).

import { $, PALETTE, OUTCOME_COLOURS, CHART_HEIGHT, view, element, formatNumber, formatConfig } from './common.js';
import { chartWidth, fetchSeries, stepToX, smooth, positiveOnly, align, nearest, withAlpha, groupSeries } from './series.js';
import { systemOfSelection, drawSystemPanel } from './system.js';

// elapsed: the system panels grouped by a config key, seconds since each run's first sample.
const X_LABELS = { step: 'step', runtime: 'relative time (s)', time: 'wall time', elapsed: 'time since start (s)' };

function metricsOfSelection() {
  const metrics = [];
  for (const entry of view.selected.values()) {
    for (const metric of entry.detail ? entry.detail.metrics : []) if (!metrics.includes(metric)) metrics.push(metric);
  }
  return metrics;
}

export function renderCharts() {
  const charts = $('#charts');
  const metrics = metricsOfSelection();
  // System metric names start with system/, which step metrics' names never do.
  const system = systemOfSelection();
  for (const [metric, panel] of view.panels) {
    if (!metrics.includes(metric) && !system.includes(metric)) {
      if (panel.plot) panel.plot.destroy();
      panel.el.remove();
      view.panels.delete(metric);
    }
  }
  if (!metrics.length && !system.length) {
    charts.replaceChildren(element('p', { class: 'hint', text: view.selected.size ? 'The selected runs have no metrics yet.' : 'Select runs in the table to chart their metrics.' }));
    view.panels.clear();
    return;
  }
  charts.querySelector('.hint')?.remove();
  let group = charts.querySelector('.system-group');
  if (system.length && !group) {
    group = element('div', { class: 'system-group' }, element('h2'));
    charts.append(group);
  } else if (!system.length && group) {
    group.remove();
    group = null;
  }
  // Grouped, the system samples of a group's runs are put together by time since each run's
  // first sample: the runs of a sweep ran at different wall times.
  if (group) group.querySelector('h2').textContent = view.groupBy ? 'System (time since start)' : 'System (wall time)';
  const panelOf = (metric, parent, before, draw) => {
    let panel = view.panels.get(metric);
    if (!panel) {
      const el = element('div', { class: 'panel', 'data-metric': metric },
        element('h2', { text: metric }), element('div', { class: 'plot' }), element('p', { class: 'notes' }));
      parent.insertBefore(el, before);
      panel = { el, plot: null, range: null, version: 0 };
      panel.redraw = () => draw(metric, panel);
      view.panels.set(metric, panel);
    }
    return panel;
  };
  for (const metric of metrics) drawPanel(metric, panelOf(metric, charts, group, drawPanel));
  for (const metric of system) drawSystemPanel(metric, panelOf(metric, group, null, drawSystemPanel));
}

async function drawPanel(metric, panel) {
  const version = ++panel.version;
  const runs = [...view.selected.entries()].filter(([, entry]) => entry.detail && entry.detail.metrics.includes(metric));
  const width = chartWidth(panel.el);
  // Display options (smoothing, log, grouping) redraw from the data already fetched.
  const key = JSON.stringify([runs.map(([id, entry]) => [id, entry.row.rows, entry.row.last_step, entry.row.branches]), panel.range, width, view.xAxis]);
  const results = await fetchCached(panel, version, key, metric, runs, (id) => fetchSeries(id, metric, panel.range, width, view.xAxis));
  if (!results) return;
  const plan = view.groupBy ? groupPlan(runs, results, width) : runPlan(runs, results);
  build(metric, panel, plan);
}

// Series of the chart when runs are drawn one by one: per run its raw curve (faded when
// smoothed), its smoothed curve, and its archived branches (dashed).
function runPlan(runs, results) {
  const tables = [];
  const series = [];
  const markers = [];
  const forks = [];
  const checkpoints = [];
  runs.forEach(([id, entry], i) => {
    const result = results[i];
    const colour = entry.colour;
    pushRunCurve(tables, series, id, colour, result);
    if (view.branches) {
      for (const branch of result.branches) {
        tables.push({ steps: branch.steps, values: smooth(branch.values, view.smoothing) });
        series.push({ label: `${id} archived #${branch.id} (rewound to ${branch.rewound_to})`, stroke: withAlpha(colour, 0.45), width: 1.4, dash: [5, 4], legend: true, run: id, branch: branch.id });
      }
    }
    // Markers are at steps: on a time axis, at the x of the curve's row there.
    const at = (step) => stepToX(result, step);
    markers.push(...attemptMarkers(id, entry.detail).map((m) => ({ ...m, x: at(m.step) })));
    checkpoints.push(...(entry.detail.checkpoints || []).map((c) => ({ ...c, run: id, colour, x: at(c.step) })));
    const origin = entry.detail.run.forked_from;
    if (origin) forks.push({ child: id, parent: origin.run, step: origin.step, x: at(origin.step) });
  });
  return { tables, series, markers, forks, checkpoints, bands: [] };
}

// A run's curve, pushed on `tables` and `series`: when smoothed, its raw points faded behind
// the smoothed curve (the raw one kept out of the legend). The system panels draw runs so too.
export function pushRunCurve(tables, series, id, colour, result) {
  if (view.smoothing) {
    tables.push(result);
    series.push({ label: `${id} (raw)`, stroke: withAlpha(colour, 0.22), width: 1, legend: false, run: id, raw: true });
  }
  tables.push({ steps: result.steps, values: smooth(result.values, view.smoothing) });
  series.push({ label: id, stroke: colour, width: 1.6, legend: true, run: id });
}

// Series of the chart grouped by a config key: per group the mean line and a min–max band.
export function groupPlan(runs, results, width) {
  const groups = new Map();
  runs.forEach(([id, entry], i) => {
    const key = formatConfig(entry.detail.run.config[view.groupBy]) || '(unset)';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(results[i]);
  });
  const tables = [];
  const series = [];
  const bands = [];
  let index = 0;
  for (const [key, members] of groups) {
    const colour = PALETTE[index++ % PALETTE.length];
    const group = groupSeries(members, width);
    const label = `${view.groupBy}=${key} (${members.length} run${members.length === 1 ? '' : 's'})`;
    tables.push({ steps: group.steps, values: group.high });
    series.push({ label: `${label} max`, stroke: withAlpha(colour, 0.3), width: 0.5, legend: false });
    tables.push({ steps: group.steps, values: group.low });
    series.push({ label: `${label} min`, stroke: withAlpha(colour, 0.3), width: 0.5, legend: false });
    bands.push({ series: [series.length - 1, series.length], fill: withAlpha(colour, 0.15) });
    if (view.smoothing) {
      tables.push({ steps: group.steps, values: group.mean });
      series.push({ label: `${label} (raw)`, stroke: withAlpha(colour, 0.25), width: 1, legend: false, raw: true });
    }
    tables.push({ steps: group.steps, values: smooth(group.mean, view.smoothing) });
    series.push({ label: `${label} mean`, stroke: colour, width: 1.8, legend: true });
  }
  return { tables, series, markers: [], forks: [], checkpoints: [], bands };
}

// The vertical markers of a run: where each attempt after the first started, coloured by
// how the attempt before it ended, and where a run that is not live ended badly.
// Each run's data of a panel: fetched with `fetchOne(id)` unless `key` (what the data depends
// on) is the panel's last, when the data already fetched is reused. `null` when the fetch
// failed (said in the panel) or a newer draw is on its way.
export async function fetchCached(panel, version, key, metric, runs, fetchOne) {
  if (panel.cacheKey === key) return panel.cacheResults;
  let results;
  try {
    results = await Promise.all(runs.map(([id]) => fetchOne(id)));
  } catch (error) {
    if (version === panel.version) panel.el.querySelector('.notes').textContent = `cannot load ${metric}: ${error.message}`;
    return null;
  }
  if (version !== panel.version) return null;
  panel.cacheKey = key;
  panel.cacheResults = results;
  return results;
}

export function attemptMarkers(id, detail) {
  const markers = [];
  const attempts = detail.attempts;
  for (let i = 1; i < attempts.length; i++) {
    const before = attempts[i - 1];
    const outcome = before.outcome || 'crashed';
    // An attempt that rewound the run (resume_from a checkpoint) starts after the step it
    // rewound to; the rows after it, up to where the previous attempt stopped, were archived.
    const rewinds = detail.branches.filter((branch) => branch.by_attempt === attempts[i].number);
    const step = attempts[i].first_step;
    const rewound = rewinds.length
      ? ` (rewound from ${Math.max(...rewinds.map((branch) => branch.last_step))})` : '';
    markers.push({ run: id, step, colour: OUTCOME_COLOURS[outcome] || '#9e9e9e',
      text: `${id}: attempt ${attempts[i].number} resumed at step ${step}${rewound} after ${outcome}` });
  }
  const lastAttempt = attempts[attempts.length - 1];
  if (lastAttempt && lastAttempt.outcome && lastAttempt.outcome !== 'finished' && lastAttempt.last_step != null) {
    markers.push({ run: id, step: lastAttempt.last_step, colour: OUTCOME_COLOURS[lastAttempt.outcome] || '#9e9e9e',
      text: `${id}: attempt ${lastAttempt.number} ${lastAttempt.outcome} at step ${lastAttempt.last_step}` });
  }
  return markers;
}

// Draws `plan` in `panel`, against `plan.xAxis` if it has one (system metrics: time), else the
// x axis chosen.
export function build(metric, panel, plan) {
  const xAxis = plan.xAxis || view.xAxis;
  const data = align(plan.tables.map((table) => ({ steps: table.steps, values: view.log ? positiveOnly(table.values) : table.values })));
  const width = chartWidth(panel.el);
  const target = panel.el.querySelector('.plot');
  const options = {
    width,
    height: CHART_HEIGHT,
    scales: { x: { time: xAxis === 'time' }, y: { distr: view.log ? 3 : 1 } },
    // Clock-time labels ("11:30pm") are wider than step numbers: keep ticks apart enough.
    axes: [{ label: X_LABELS[xAxis], size: 34, labelSize: 14, space: xAxis === 'time' ? 80 : 50 }, { size: 64 }],
    legend: { live: true },
    cursor: {
      drag: { x: true, y: false, setScale: true },
      bind: {
        dblclick: () => () => { panel.range = null; panel.redraw(); return null; },
      },
    },
    series: [{ label: X_LABELS[xAxis], value: (u, v) => formatX(v, xAxis) }].concat(plan.series.map((s) => ({
      label: s.label, stroke: s.stroke, width: s.width, dash: s.dash, spanGaps: true, points: { show: false },
      value: (u, v, seriesIndex, index) => formatNumber(v ?? nearest(u.data[seriesIndex], index)) || '—',
    }))),
    bands: plan.bands,
    hooks: {
      draw: [(u) => drawResume(u, panel, plan)],
      setSelect: [(u) => {
        // Zooming fetches a step range; other axes zoom on the points already drawn.
        if (u.select.width < 2 || xAxis !== 'step') return;
        const from = u.posToVal(u.select.left, 'x');
        const to = u.posToVal(u.select.left + u.select.width, 'x');
        panel.range = [from, to];
        drawPanel(metric, panel); // fetch the zoomed range at full resolution
      }],
    },
  };
  const zoomed = panel.range;
  if (panel.plot) panel.plot.destroy();
  target.replaceChildren();
  panel.plot = new uPlot(options, data, target);
  if (zoomed) panel.plot.setScale('x', { min: zoomed[0], max: zoomed[1] });
  // Only the runs' own curves take legend rows; raw and band edges are hidden there.
  const rows = panel.plot.root.querySelectorAll('.u-legend .u-series');
  plan.series.forEach((s, i) => { if (!s.legend && rows[i + 1]) rows[i + 1].classList.add('hidden-entry'); });
  const notes = panel.el.querySelector('.notes');
  notes.replaceChildren(...plan.markers.map((m) => element('span', { text: m.text, style: `color:${m.colour}` })),
    ...plan.checkpoints.map((c) => element('span', { class: 'checkpoint', style: `color:${c.colour}`,
      text: `${c.run}: checkpoint at step ${c.step} ${c.path}${c.exists ? '' : ' (missing)'}${c.branch != null ? ` (archived #${c.branch})` : ''}` })),
    ...plan.forks.map((f) => element('span', { text: `${f.child}: steps up to ${f.step} inherited from ${f.parent}` })));
  const xs = data[0];
  panel.el.dataset.series = String(plan.series.filter((s) => s.legend && s.branch == null).length);
  panel.el.dataset.lastStep = xs.length ? String(xs[xs.length - 1]) : '';
  panel.el.dataset.smoothing = String(view.smoothing);
  panel.el.dataset.grouped = view.groupBy;
  panel.el.dataset.log = String(view.log);
  panel.el.dataset.xAxis = xAxis;
  panel.el.dataset.firstX = xs.length ? String(xs[0]) : '';
  panel.el.dataset.range = zoomed ? `${Math.round(zoomed[0])}-${Math.round(zoomed[1])}` : '';
}

// Attempt markers and inherited fork ranges, drawn over the plot.
function drawResume(u, panel, plan) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  let drawn = 0;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  for (const fork of plan.forks) {
    const x0 = u.valToPos(u.scales.x.min, 'x', true);
    if (fork.x == null) continue;
    const x1 = Math.min(left + width, u.valToPos(fork.x, 'x', true));
    if (x1 > left) {
      ctx.fillStyle = 'rgba(120, 144, 156, 0.12)';
      ctx.fillRect(Math.max(left, x0), top, x1 - Math.max(left, x0), height);
    }
  }
  const lineWidth = 2 * (window.devicePixelRatio || 1);
  for (const marker of plan.markers) {
    if (marker.x == null) continue;
    const x = Math.round(u.valToPos(marker.x, 'x', true));
    if (x < left || x > left + width) continue;
    ctx.strokeStyle = marker.colour;
    ctx.lineWidth = lineWidth;
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    drawn++;
  }
  // Checkpoints: small ticks up from the x axis, hollow where the file is gone.
  let ticks = 0;
  const tick = 8 * (window.devicePixelRatio || 1);
  ctx.setLineDash([]);
  for (const checkpoint of plan.checkpoints) {
    if (checkpoint.x == null) continue;
    const x = Math.round(u.valToPos(checkpoint.x, 'x', true));
    if (x < left || x > left + width) continue;
    ctx.beginPath();
    ctx.moveTo(x, top + height);
    ctx.lineTo(x - tick / 2, top + height - tick);
    ctx.lineTo(x + tick / 2, top + height - tick);
    ctx.closePath();
    ctx.strokeStyle = checkpoint.colour;
    ctx.lineWidth = lineWidth / 2;
    ctx.stroke();
    if (checkpoint.exists) { ctx.fillStyle = checkpoint.colour; ctx.fill(); }
    ticks++;
  }
  ctx.restore();
  panel.el.dataset.markers = String(drawn);
  panel.el.dataset.checkpoints = String(ticks);
}

// The hovered x in the legend: a step, seconds (of running time, or since the first sample),
// or a date and time.
function formatX(v, xAxis) {
  if (v == null) return '—';
  if (xAxis === 'runtime' || xAxis === 'elapsed') return `${formatNumber(v)} s`;
  if (xAxis === 'time') return new Date(v * 1000).toISOString().replace('T', ' ').slice(0, 23);
  return String(v);
}
