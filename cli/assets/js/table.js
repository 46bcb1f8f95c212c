// The runs table (one page of it, sorted and filtered by the server) and the selection of runs,
// which the address keeps (`#select=a,b`).

import { $, PALETTE, OUTCOME_COLOURS, PAGE_SIZE, view, element, api, setStatus, formatNumber, formatAge, formatConfig } from './common.js';
import { renderCharts, attemptMarkers } from './charts.js';

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
      if (row.state === 'damaged') break; // nothing to chart: the state's tooltip says why
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

export function renderTable(page) {
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
    if (row.state !== 'damaged' || view.selected.has(row.id)) tr.addEventListener('click', () => toggle(row));
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
export async function loadTable(quiet = false) {
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

export async function loadDetail(id) {
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

export async function restoreSelection() {
  const match = /^#select=(.*)$/.exec(location.hash);
  if (!match) return;
  const ids = match[1].split(',').filter(Boolean).map(decodeURIComponent);
  for (const id of ids) view.selected.set(id, { row: null, detail: null, colour: freeColour() });
  await Promise.all(ids.map(loadDetail));
  if (view.page) renderTable(view.page);
  renderSelection();
  renderCharts();
}

export function renderSelection() {
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
    if (details.some((detail) => (detail.checkpoints || []).length)) {
      legend.append(element('span', { class: 'key' }, element('span', { class: 'tick', text: '▼' }), element('span', { text: 'checkpoint (hollow: its file is gone)' })));
    }
    if (details.some((detail) => detail.run.forked_from)) {
      legend.append(element('span', { class: 'key' }, element('span', { class: 'band' }), element('span', { text: 'inherited by a fork' })));
    }
  }
  $('#selection').textContent = view.selected.size ? `${view.selected.size} selected` : '';
}
