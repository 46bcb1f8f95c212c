// The runstore viewer: live polling, the controls, start-up.

import { $, LIVE_POLL_MS, TABLE_POLL_MS, PAGE_SIZE, view, api, setStatus } from './common.js';
import { renderCharts } from './charts.js';
import { renderTable, loadTable, loadDetail, restoreSelection, renderSelection } from './table.js';

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
        || now.attempts !== before.attempts || now.branches !== before.branches
        || (entry.detail && entry.detail.system.length && now.updated_at !== before.updated_at)) {
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
  $('#x-axis').addEventListener('change', (event) => {
    view.xAxis = event.target.value;
    for (const panel of view.panels.values()) panel.range = null; // a zoom is in the old x
    renderCharts();
  });
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
