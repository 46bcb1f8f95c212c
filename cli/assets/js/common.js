// What every part of the page shares: constants, the view's state, the DOM helper, the JSON
// fetcher and the formatters. Everything from the store is put in the page as text
// (textContent), never as HTML.

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79',
  '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd', '#e6550d', '#31a354', '#756bb1', '#636363', '#6baed6'];
// Attempt boundaries, by how the attempt before the boundary ended.
export const OUTCOME_COLOURS = { crashed: '#ff0033', preempted: '#ff9900', failed: '#9900cc', finished: '#9e9e9e' };
export const LIVE_POLL_MS = 1000;
export const TABLE_POLL_MS = 2000;
export const PAGE_SIZE = 100;
export const CHART_HEIGHT = 260;

export const view = {
  sort: 'updated', desc: true, q: '', state: '', offset: 0,
  page: null,
  // id -> { row, detail, colour }
  selected: new Map(),
  smoothing: 0, log: false, branches: true, groupBy: '',
  // The x axis: 'step', 'runtime' (seconds running, dead time between attempts left out) or
  // 'time' (wall time); the server downsamples in that x.
  xAxis: 'step',
  // metric -> { el, plot, range }
  panels: new Map(),
  // `${id}\u0000${metric}\u0000${from}\u0000${to}` -> series JSON
  series: new Map(),
};

export const $ = (selector) => document.querySelector(selector);

export function element(tag, attributes = {}, ...children) {
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

export async function api(path) {
  const response = await fetch(path, { headers: { Accept: 'application/json' } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

export function setStatus(text, isError = false) {
  const status = $('#status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

export function formatNumber(value) {
  if (value == null) return '';
  if (typeof value === 'string') return value; // "NaN", "inf", "-inf"
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-3 && magnitude < 1e6) return String(Number(value.toPrecision(6)));
  return value.toExponential(4).replace(/\.?0+e/, 'e');
}

export function formatAge(ms) {
  if (!ms) return '';
  const seconds = Math.max(0, (Date.now() - ms) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(ms).toISOString().slice(0, 10);
}

export function formatConfig(value) {
  if (value === undefined || value === null) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
