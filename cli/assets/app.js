// The runstore viewer: the runs table, metric charts (uPlot) with the selected runs overlaid,
// attempts and archived branches drawn on them, group-by, and polling for live runs.
// Everything from the store is put in the page as text (textContent), never as HTML.
'use strict';

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79',
  '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd', '#e6550d', '#31a354', '#756bb1', '#636363', '#6baed6'];
// Attempt boundaries, by how the attempt before the boundary ended.
const OUTCOME_COLOURS = { crashed: '#ff0033', preempted: '#ff9900', failed: '#9900cc', finished: '#9e9e9e' };
const LIVE_POLL_MS = 1000;
const TABLE_POLL_MS = 2000;
const PAGE_SIZE = 100;
const CHART_HEIGHT = 260;

const view = {
  sort: 'updated', desc: true, q: '', state: '', offset: 0,
  page: null,
  // id -> { row, detail, colour }
  selected: new Map(),
  smoothing: 0, log: false, branches: true, groupBy: '',
  // metric -> { el, plot, range }
  panels: new Map(),
  // `${id}\u0000${metric}\u0000${from}\u0000${to}` -> series JSON
  series: new Map(),
};

const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('data-')) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: 'application/json' } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function setStatus(text, isError = false) {
  const status = $('#status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

// ---------- formatting ----------

function formatNumber(value) {
  if (value == null) return '';
  if (typeof value === 'string') return value; // "NaN", "inf", "-inf"
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-3 && magnitude < 1e6) return String(Number(value.toPrecision(6)));
  return value.toExponential(4).replace(/\.?0+e/, 'e');
}

function formatAge(ms) {
  if (!ms) return '';
  const seconds = Math.max(0, (Date.now() - ms) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(ms).toISOString().slice(0, 10);
}

function formatConfig(value) {
  if (value === undefined || value === null) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

// ---------- the runs table ----------

function columns(page) {
  const fixed = [
    { key: 'select', label: '', sortable: false },
    { key: 'state', label: 'state' },
    { key: 'id', label: 'id' },
    { key: 'name', label: 'name' },
    { key: 'project', label: 'project' },
    { key: 'tags', label: 'tags', sortable: false },
    { key: 'steps', label: 'steps', num: true },
    { key: 'updated', label: 'updated' },
    { key: 'attempts', label: 'attempts', num: true },
  ];
  const config = page.config_keys.map((key) => ({ key: `config:${key}`, label: key, group: 'config' }));
  const summary = page.summary_keys.map((key) => ({ key: `summary:${key}`, label: key, group: 'summary', num: true }));
  return fixed.concat(config, summary);
}

function cell(row, column) {
  const td = element('td', { class: column.num ? 'num' : '' });
  switch (column.key) {
    case 'select': {
      const box = element('input', { type: 'checkbox', checked: view.selected.has(row.id) });
      box.setAttribute('aria-label', `select ${row.id}`);
      td.append(box);
      const entry = view.selected.get(row.id);
      if (entry) td.append(element('span', { class: 'swatch', style: `background:${entry.colour}` }));
      break;
    }
    case 'state': {
      const badge = element('span', { class: `state ${row.state}`, text: row.state });
      if (row.error) badge.title = row.error;
      td.append(badge);
      break;
    }
    case 'id': td.textContent = row.id; break;
    case 'name': td.textContent = row.name || ''; break;
    case 'project': td.textContent = row.project || ''; break;
    case 'tags': for (const tag of row.tags) td.append(element('span', { class: 'tag', text: tag })); break;
    case 'steps': td.textContent = row.last_step == null ? '' : String(row.last_step); break;
    case 'updated': td.textContent = formatAge(row.updated_at); td.title = row.updated_at ? new Date(row.updated_at).toISOString() : ''; break;
    case 'attempts': td.textContent = String(row.attempts); break;
    default: {
      const [group, key] = [column.key.slice(0, column.key.indexOf(':')), column.key.slice(column.key.indexOf(':') + 1)];
      td.textContent = group === 'config' ? formatConfig(row.config[key]) : formatNumber(row.summary[key]);
    }
  }
  return td;
}

function renderTable(page) {
  const cols = columns(page);
  const head = element('tr');
  for (const column of cols) {
    const th = element('th', { text: column.label, class: column.group ? 'group' : '' });
    if (column.group) th.title = `${column.group}: ${column.label}`;
    if (column.sortable !== false) {
      if (view.sort === column.key) th.classList.add('sorted', ...(view.desc ? [] : ['asc']));
      th.addEventListener('click', () => {
        view.desc = view.sort === column.key ? !view.desc : column.num || column.key === 'updated';
        view.sort = column.key;
        view.offset = 0;
        loadTable();
      });
    }
    head.append(th);
  }
  $('#runs thead').replaceChildren(head);
  const body = document.createDocumentFragment();
  for (const row of page.runs) {
    const tr = element('tr', { 'data-id': row.id, 'data-state': row.state });
    if (view.selected.has(row.id)) tr.classList.add('selected');
    for (const column of cols) tr.append(cell(row, column));
    tr.addEventListener('click', () => toggle(row));
    body.append(tr);
  }
  $('#runs tbody').replaceChildren(body);
  const last = Math.min(page.offset + page.runs.length, page.total);
  $('#page-info').textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : '0 runs';
  $('#prev').disabled = page.offset === 0;
  $('#next').disabled = last >= page.total;
  const states = Object.entries(page.states).map(([state, count]) => `${count} ${state}`).join(' · ');
  $('#counts').textContent = `${page.all} runs${states ? ': ' + states : ''}`;
  const groupBy = $('#group-by');
  const options = [''].concat(page.config_keys);
  if (groupBy.options.length !== options.length || options.some((key, index) => groupBy.options[index].value !== key)) {
    groupBy.replaceChildren(...options.map((key) => element('option', { value: key, text: key || '(none)' })));
    groupBy.value = options.includes(view.groupBy) ? view.groupBy : '';
  }
}

let tableRequest = 0;
let lastTableJson = '';
async function loadTable(quiet = false) {
  const request = ++tableRequest;
  const params = new URLSearchParams({ sort: view.sort, desc: view.desc ? '1' : '0', offset: view.offset, limit: PAGE_SIZE });
  if (view.q) params.set('q', view.q);
  if (view.state) params.set('state', view.state);
  try {
    const page = await api(`/api/runs?${params}`);
    if (request !== tableRequest) return;
    const json = JSON.stringify(page);
    view.page = page;
    if (!quiet || json !== lastTableJson) renderTable(page);
    lastTableJson = json;
    if (!quiet) setStatus('');
  } catch (error) {
    setStatus(`cannot list runs: ${error.message}`, true);
  }
}

// ---------- selection ----------

function freeColour() {
  const used = new Set([...view.selected.values()].map((entry) => entry.colour));
  return PALETTE.find((colour) => !used.has(colour)) || PALETTE[view.selected.size % PALETTE.length];
}

async function toggle(row) {
  if (view.selected.has(row.id)) {
    view.selected.delete(row.id);
  } else {
    view.selected.set(row.id, { row, detail: null, colour: freeColour() });
    await loadDetail(row.id);
  }
  if (view.page) renderTable(view.page);
  renderSelection();
  renderCharts();
}

async function loadDetail(id) {
  const entry = view.selected.get(id);
  if (!entry) return;
  try {
    entry.detail = await api(`/api/runs/${encodeURIComponent(id)}`);
    entry.row = entry.detail.run;
    entry.error = null;
  } catch (error) {
    entry.error = error.message;
    entry.detail = null;
  }
}

// The selection is kept in the address (`#select=a,b`), so a view can be reloaded or shared.
function saveSelection() {
  const ids = [...view.selected.keys()].map(encodeURIComponent).join(',');
  history.replaceState(null, '', ids ? `#select=${ids}` : location.pathname + location.search);
}

async function restoreSelection() {
  const match = /^#select=(.*)$/.exec(location.hash);
  if (!match) return;
  const ids = match[1].split(',').filter(Boolean).map(decodeURIComponent);
  for (const id of ids) view.selected.set(id, { row: null, detail: null, colour: freeColour() });
  await Promise.all(ids.map(loadDetail));
  if (view.page) renderTable(view.page);
  renderSelection();
  renderCharts();
}

function renderSelection() {
  saveSelection();
  const legend = $('#legend');
  legend.replaceChildren();
  for (const [id, entry] of view.selected) {
    const key = element('span', { class: 'key' }, element('span', { class: 'line', style: `border-color:${entry.colour}` }),
      element('span', { text: entry.error ? `${id} (${entry.error})` : id }));
    legend.append(key);
  }
  if (view.selected.size && view.groupBy) {
    legend.replaceChildren(element('span', { class: 'key', text: `grouped by ${view.groupBy}: the mean of each group's runs, its band from the lowest to the highest run` }));
  } else if (view.selected.size) {
    // Keys only for what the selected runs have: branches, resumes (by outcome), forks.
    const details = [...view.selected.values()].map((entry) => entry.detail).filter(Boolean);
    const markers = details.flatMap((detail) => attemptMarkers(detail.run.id, detail));
    const colours = new Set(markers.map((marker) => marker.colour));
    if (details.some((detail) => detail.branches.length)) {
      legend.append(element('span', { class: 'key' }, element('span', { class: 'line dashed', style: 'border-color:#555' }), element('span', { text: 'archived branch' })));
    }
    for (const [outcome, colour] of Object.entries(OUTCOME_COLOURS)) {
      if (!colours.has(colour)) continue;
      legend.append(element('span', { class: 'key' }, element('span', { class: 'bar', style: `background:${colour}` }), element('span', { text: `attempt ended ${outcome}` })));
    }
    if (details.some((detail) => detail.run.forked_from)) {
      legend.append(element('span', { class: 'key' }, element('span', { class: 'band' }), element('span', { text: 'inherited by a fork' })));
    }
  }
  $('#selection').textContent = view.selected.size ? `${view.selected.size} selected` : '';
}

// ---------- chart data ----------

function chartWidth(panel) {
  return Math.max(200, Math.floor(panel.clientWidth - 20));
}

async function fetchSeries(id, metric, range, width) {
  const params = new URLSearchParams({ metric, width: Math.min(8192, Math.round(width * (window.devicePixelRatio || 1))) });
  if (range) {
    params.set('from', Math.max(0, Math.floor(range[0])));
    params.set('to', Math.max(0, Math.ceil(range[1])));
  }
  return api(`/api/runs/${encodeURIComponent(id)}/series?${params}`);
}

// TensorBoard's exponential moving average, debiased so the start is not pulled towards 0.
function smooth(values, weight) {
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

function positiveOnly(values) {
  return values.map((value) => (value != null && value > 0 ? value : null));
}

// Puts series with their own steps on one x axis: the union of the steps, null where a
// series has no point (drawn across, since every series spans gaps).
function align(tables) {
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
function nearest(column, index) {
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

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// Per group: the mean over the group's runs of each run's mean in each of `width` step
// columns, and the lowest and highest of those run means.
function groupSeries(tables, width) {
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
    out.steps.push(Math.round(first + ((c + 0.5) * span) / columns));
    out.mean.push(means.reduce((a, b) => a + b, 0) / means.length);
    out.low.push(Math.min(...means));
    out.high.push(Math.max(...means));
  }
  return out;
}

// ---------- charts ----------

function metricsOfSelection() {
  const metrics = [];
  for (const entry of view.selected.values()) {
    for (const metric of entry.detail ? entry.detail.metrics : []) if (!metrics.includes(metric)) metrics.push(metric);
  }
  return metrics;
}

function renderCharts() {
  const charts = $('#charts');
  const metrics = metricsOfSelection();
  for (const [metric, panel] of view.panels) {
    if (!metrics.includes(metric)) {
      if (panel.plot) panel.plot.destroy();
      panel.el.remove();
      view.panels.delete(metric);
    }
  }
  if (!metrics.length) {
    charts.replaceChildren(element('p', { class: 'hint', text: view.selected.size ? 'The selected runs have no metrics yet.' : 'Select runs in the table to chart their metrics.' }));
    view.panels.clear();
    return;
  }
  charts.querySelector('.hint')?.remove();
  for (const metric of metrics) {
    let panel = view.panels.get(metric);
    if (!panel) {
      const el = element('div', { class: 'panel', 'data-metric': metric },
        element('h2', { text: metric }), element('div', { class: 'plot' }), element('p', { class: 'notes' }));
      charts.append(el);
      panel = { el, plot: null, range: null, version: 0 };
      view.panels.set(metric, panel);
    }
    drawPanel(metric, panel);
  }
}

async function drawPanel(metric, panel) {
  const version = ++panel.version;
  const runs = [...view.selected.entries()].filter(([, entry]) => entry.detail && entry.detail.metrics.includes(metric));
  const width = chartWidth(panel.el);
  // Display options (smoothing, log, grouping) redraw from the data already fetched.
  const key = JSON.stringify([runs.map(([id, entry]) => [id, entry.row.rows, entry.row.last_step, entry.row.branches]), panel.range, width]);
  let results = panel.cacheKey === key ? panel.cacheResults : null;
  if (!results) {
    try {
      results = await Promise.all(runs.map(([id]) => fetchSeries(id, metric, panel.range, width)));
    } catch (error) {
      if (version === panel.version) panel.el.querySelector('.notes').textContent = `cannot load ${metric}: ${error.message}`;
      return;
    }
    if (version !== panel.version) return; // a newer draw is on its way
    panel.cacheKey = key;
    panel.cacheResults = results;
  }
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
  runs.forEach(([id, entry], i) => {
    const result = results[i];
    const colour = entry.colour;
    if (view.smoothing) {
      tables.push(result);
      series.push({ label: `${id} (raw)`, stroke: withAlpha(colour, 0.22), width: 1, legend: false, run: id, raw: true });
    }
    tables.push({ steps: result.steps, values: smooth(result.values, view.smoothing) });
    series.push({ label: id, stroke: colour, width: 1.6, legend: true, run: id });
    if (view.branches) {
      for (const branch of result.branches) {
        tables.push({ steps: branch.steps, values: smooth(branch.values, view.smoothing) });
        series.push({ label: `${id} archived #${branch.id} (rewound to ${branch.rewound_to})`, stroke: withAlpha(colour, 0.45), width: 1.4, dash: [5, 4], legend: true, run: id, branch: branch.id });
      }
    }
    markers.push(...attemptMarkers(id, entry.detail));
    const origin = entry.detail.run.forked_from;
    if (origin) forks.push({ child: id, parent: origin.run, step: origin.step });
  });
  return { tables, series, markers, forks, bands: [] };
}

// Series of the chart grouped by a config key: per group the mean line and a min–max band.
function groupPlan(runs, results, width) {
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
  return { tables, series, markers: [], forks: [], bands };
}

// The vertical markers of a run: where each attempt after the first started, coloured by
// how the attempt before it ended, and where a run that is not live ended badly.
function attemptMarkers(id, detail) {
  const markers = [];
  const attempts = detail.attempts;
  for (let i = 1; i < attempts.length; i++) {
    const before = attempts[i - 1];
    const outcome = before.outcome || 'crashed';
    // An attempt that rewound the run (resume_from a checkpoint) went on after the step it
    // rewound to, not where the previous attempt stopped.
    const rewinds = detail.branches.filter((branch) => branch.by_attempt === attempts[i].number);
    const step = Math.min(attempts[i].first_step, ...rewinds.map((branch) => branch.rewound_to + 1));
    const rewound = step < attempts[i].first_step ? ` (rewound from ${attempts[i].first_step})` : '';
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

function build(metric, panel, plan) {
  const data = align(plan.tables.map((table) => ({ steps: table.steps, values: view.log ? positiveOnly(table.values) : table.values })));
  const width = chartWidth(panel.el);
  const target = panel.el.querySelector('.plot');
  const options = {
    width,
    height: CHART_HEIGHT,
    scales: { x: { time: false }, y: { distr: view.log ? 3 : 1 } },
    axes: [{ label: 'step', size: 34, labelSize: 14 }, { size: 64 }],
    legend: { live: true },
    cursor: {
      drag: { x: true, y: false, setScale: true },
      bind: {
        dblclick: () => () => { panel.range = null; drawPanel(metric, panel); return null; },
      },
    },
    series: [{ label: 'step', value: (u, v) => (v == null ? '—' : String(v)) }].concat(plan.series.map((s) => ({
      label: s.label, stroke: s.stroke, width: s.width, dash: s.dash, spanGaps: true, points: { show: false },
      value: (u, v, seriesIndex, index) => formatNumber(v ?? nearest(u.data[seriesIndex], index)) || '—',
    }))),
    bands: plan.bands,
    hooks: {
      draw: [(u) => drawResume(u, panel, plan)],
      setSelect: [(u) => {
        if (u.select.width < 2) return;
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
    ...plan.forks.map((f) => element('span', { text: `${f.child}: steps up to ${f.step} inherited from ${f.parent}` })));
  const xs = data[0];
  panel.el.dataset.series = String(plan.series.filter((s) => s.legend && s.branch == null).length);
  panel.el.dataset.lastStep = xs.length ? String(xs[xs.length - 1]) : '';
  panel.el.dataset.smoothing = String(view.smoothing);
  panel.el.dataset.grouped = view.groupBy;
  panel.el.dataset.log = String(view.log);
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
    const x1 = Math.min(left + width, u.valToPos(fork.step, 'x', true));
    if (x1 > left) {
      ctx.fillStyle = 'rgba(120, 144, 156, 0.12)';
      ctx.fillRect(Math.max(left, x0), top, x1 - Math.max(left, x0), height);
    }
  }
  const lineWidth = 2 * (window.devicePixelRatio || 1);
  for (const marker of plan.markers) {
    const x = Math.round(u.valToPos(marker.step, 'x', true));
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
  ctx.restore();
  panel.el.dataset.markers = String(drawn);
}

// ---------- live updates ----------

let polling = false;
async function pollLive() {
  if (polling || document.hidden || !view.selected.size) return;
  polling = true;
  try {
    await pollLiveOnce();
  } finally {
    polling = false;
  }
}

async function pollLiveOnce() {
  const ids = [...view.selected.keys()];
  let status;
  try {
    status = await api(`/api/live?ids=${ids.map(encodeURIComponent).join(',')}`);
  } catch (error) {
    setStatus(`live update failed: ${error.message}`, true);
    return;
  }
  let changed = false;
  for (const id of ids) {
    const entry = view.selected.get(id);
    const now = status.runs[id];
    if (!entry || !now) continue;
    const before = entry.row;
    if (!before || now.rows !== before.rows || now.last_step !== before.last_step || now.state !== before.state
        || now.attempts !== before.attempts || now.branches !== before.branches) {
      await loadDetail(id);
      if (!entry.detail) entry.row = now; // damaged: ask again only when its status changes
      changed = true;
    }
  }
  if (changed) {
    renderSelection();
    renderCharts();
    if (view.page) loadTable(true);
  }
}

// ---------- controls ----------

function debounce(fn, ms) {
  let timer = 0;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function init() {
  const reloadTable = debounce(() => { view.offset = 0; loadTable(); }, 200);
  $('#filter').addEventListener('input', (event) => { view.q = event.target.value.trim(); reloadTable(); });
  $('#state-filter').addEventListener('change', (event) => { view.state = event.target.value; view.offset = 0; loadTable(); });
  $('#prev').addEventListener('click', () => { view.offset = Math.max(0, view.offset - PAGE_SIZE); loadTable(); });
  $('#next').addEventListener('click', () => { view.offset += PAGE_SIZE; loadTable(); });
  const redraw = debounce(renderCharts, 60);
  $('#smoothing').addEventListener('input', (event) => {
    view.smoothing = Number(event.target.value);
    $('#smoothing-value').textContent = event.target.value;
    redraw();
  });
  $('#log-scale').addEventListener('change', (event) => { view.log = event.target.checked; renderCharts(); });
  $('#show-branches').addEventListener('change', (event) => { view.branches = event.target.checked; renderCharts(); });
  $('#group-by').addEventListener('change', (event) => { view.groupBy = event.target.value; renderSelection(); renderCharts(); });
  $('#clear').addEventListener('click', () => {
    view.selected.clear();
    if (view.page) renderTable(view.page);
    renderSelection();
    renderCharts();
  });
  window.addEventListener('resize', debounce(renderCharts, 200));
  loadTable().then(restoreSelection);
  setInterval(() => { if (!document.hidden) loadTable(true); }, TABLE_POLL_MS);
  setInterval(pollLive, LIVE_POLL_MS);
}

init();
