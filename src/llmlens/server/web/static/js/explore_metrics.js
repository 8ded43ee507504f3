// OTLP metrics explorer: the stored metrics (GET /api/v1/metrics), one metric's attributes
// (GET /api/v1/metrics/attributes) and its series, filtered and grouped (GET /api/v1/metrics/query).
// State in the URL: metric, filter (repeated key:value), group_by (repeated), percentile, measure.
import { getJSON } from './lib/api.js';
import { timeChart } from './lib/charts.js';
import { $, clear, emptyState, h, markReady, otelHint, setBusy, showError } from './lib/dom.js';
import * as f from './lib/format.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { timebar } from './lib/timebar.js';

const PERCENTILES = ['50', '90', '95', '99'];
const MEASURE_LABELS = { value: 'Value', rate: 'Rate per second', count: 'Count', mean: 'Mean', percentiles: 'Percentiles' };
let metrics = [];
let generation = 0;

const multi = (key) => state.params().getAll(key);

/** Replace a repeated URL parameter (state.update sets one value per key). */
function setMulti(key, values) {
  const p = state.params();
  p.delete(key);
  for (const value of values) p.append(key, value);
  window.history.pushState(null, '', `${window.location.pathname}?${p}`);
  state.syncNav();
}

$('#metric-search').addEventListener('input', renderList);
timebar($('#filters'), () => load());  // the first load, once the range is known
window.addEventListener('popstate', () => load());

async function load() {
  const mine = ++generation;
  setBusy(true);
  try {
    metrics = (await getJSON('/api/v1/metrics', state.timeParams())).items;
    if (mine !== generation) return;
    clear($('#message'));
    renderList();
    const name = state.get('metric');
    if (!metrics.length) {
      emptyState($('#message'), 'No OTLP metrics in this time range.', ...otelHint());
      clearMetric();
    } else if (!name) {
      clearMetric('Choose a metric on the left to chart it.');
    } else {
      await loadMetric(name, mine);
    }
    if (mine === generation) markReady();
  } catch (error) {
    if (mine !== generation) return;
    showError($('#message'), error);
    markReady('error');
  } finally {
    if (mine === generation) setBusy(false);
  }
}

function renderList() {
  const needle = $('#metric-search').value.trim().toLowerCase();
  const current = state.get('metric');
  clear($('#metric-list'), metrics.filter((m) => !needle || m.name.toLowerCase().includes(needle)).map((m) => h('li', {},
    h('button', { type: 'button', 'data-metric': m.name, 'aria-current': m.name === current ? 'true' : 'false',
      onclick: () => { state.update({ metric: m.name, filter: null, group_by: null, measure: null, percentile: null }); load(); } },
    h('span', { class: 'mono' }, m.name),
    h('span', { class: 'muted' }, `${m.type.replace('_', ' ')}${m.unit ? ` · ${m.unit}` : ''} · ${f.int(m.points)} points`)))));
}

function clearMetric(text = '') {
  $('#h-metric').textContent = 'Select a metric';
  $('#metric-about').textContent = text;
  $('#controls').hidden = true;
  clear($('#active-filters'));
  clear($('#chart-metric'));
  clear($('#series'));
}

function measureOf(result) {
  const wanted = state.get('measure');
  const histogram = result.type.includes('histogram');
  const choices = histogram ? ['percentiles', 'count', 'mean'] : result.measures;
  const fallback = result.measures.includes('rate') ? 'rate' : choices[0];
  return { choices, measure: choices.includes(wanted) ? wanted : fallback, histogram };
}

async function loadMetric(name, mine) {
  const time = state.timeParams();
  const percentiles = multi('percentile').length ? multi('percentile') : ['50', '90', '99'];
  const [about, result] = await Promise.all([
    getJSON('/api/v1/metrics/attributes', { name, ...time }),
    getJSON('/api/v1/metrics/query', { name, ...time, filter: multi('filter'), group_by: multi('group_by'), percentile: percentiles }),
  ]);
  if (mine !== generation) return;
  $('#h-metric').textContent = name;
  $('#metric-about').textContent = [about.type.replace('_', ' '), about.unit && `unit ${about.unit}`, about.description,
    result.temporality && `${result.temporality}${result.monotonic ? ', monotonic' : ''}`].filter(Boolean).join(' · ');
  const { choices, measure, histogram } = measureOf(result);
  renderControls(about, choices, measure, histogram, percentiles);
  renderChart(result, measure, histogram);
  renderTable(result);
}

function renderControls(about, choices, measure, histogram, percentiles) {
  const form = $('#controls');
  form.hidden = false;
  const keys = about.attributes;
  const keySelect = h('select', { id: 'filter-key' }, keys.map((a) => h('option', { value: a.key }, `${a.key} (${a.cardinality})`)));
  const valueSelect = h('select', { id: 'filter-value' });
  const fillValues = () => {
    const attribute = keys.find((a) => a.key === keySelect.value);
    valueSelect.replaceChildren(...(attribute ? attribute.values : []).map((v) => h('option', { value: v }, v || '(empty)')));
  };
  keySelect.addEventListener('change', fillValues);
  fillValues();
  const add = h('button', { type: 'button', class: 'secondary', id: 'add-filter', onclick: () => {
    if (!keySelect.value) return;
    setMulti('filter', [...new Set([...multi('filter'), `${keySelect.value}:${valueSelect.value}`])]);
    load();
  } }, 'Add filter');
  const grouped = new Set(multi('group_by'));
  const groupBoxes = h('fieldset', { class: 'group-keys' }, h('legend', {}, 'Group by'), keys.map((a) => h('label', {},
    h('input', { type: 'checkbox', value: a.key, 'data-group-key': a.key, checked: grouped.has(a.key), onchange: (event) => {
      const next = new Set(multi('group_by'));
      if (event.target.checked) next.add(a.key); else next.delete(a.key);
      setMulti('group_by', [...next]);
      load();
    } }), ` ${a.key}`)));
  const measureSelect = h('select', { id: 'measure' }, choices.map((c) => h('option', { value: c }, MEASURE_LABELS[c] || c)));
  measureSelect.value = measure;
  measureSelect.addEventListener('change', () => { state.update({ measure: measureSelect.value }); load(); });
  const percentileBoxes = histogram ? h('fieldset', { class: 'group-keys' }, h('legend', {}, 'Percentiles'),
    PERCENTILES.map((p) => h('label', {}, h('input', { type: 'checkbox', value: p, 'data-percentile': p,
      checked: percentiles.includes(p), onchange: () => {
        const next = [...document.querySelectorAll('[data-percentile]')].filter((box) => box.checked).map((box) => box.value);
        setMulti('percentile', next.length ? next : ['50']);
        load();
      } }), ` p${p}`))) : null;
  clear(form, h('label', { for: 'filter-key' }, 'Attribute', keySelect), h('label', { for: 'filter-value' }, 'Value', valueSelect),
    add, groupBoxes, h('label', { for: 'measure' }, 'Show', measureSelect), percentileBoxes);
  clear($('#active-filters'), multi('filter').map((item) => h('li', { 'data-filter': item }, item,
    h('button', { type: 'button', 'aria-label': `Remove filter ${item}`, onclick: () => {
      setMulti('filter', multi('filter').filter((x) => x !== item));
      load();
    } }, '×'))));
}

function lineName(labels) {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(', ') : 'all';
}

function renderChart(result, measure, histogram) {
  const names = histogram && measure === 'percentiles' ? result.measures.filter((m) => /^p\d/.test(m)) : [measure];
  const fmt = (v) => (v === null || v === undefined ? f.dash : f.num(v, Math.abs(v) < 10 ? 3 : 1));
  const series = result.series.flatMap((line) => names.map((m) => ({
    label: names.length > 1 ? `${m} ${lineName(line.labels)}` : lineName(line.labels), values: line.values[m] })));
  timeChart($('#chart-metric'), {
    title: `${result.name}${measure === 'percentiles' ? '' : ` ${MEASURE_LABELS[measure] || measure}`}`,
    buckets: result.buckets, series, fmt, spanGaps: true,  // an app exports every 10-60 s, often less often than the step
  });
}

function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

function renderTable(result) {
  if (!result.series.length) {
    clear($('#series'), h('p', { class: 'muted', 'data-testid': 'no-series' }, 'No points match these filters in this time range.'));
    return;
  }
  const keys = result.group_by;
  clear($('#series'),
    result.truncated ? h('p', { class: 'muted' }, 'Showing the 30 largest groups (or the first 100,000 points): narrow the filters to see the rest.') : null,
    table([
      ...keys.map((k) => ({ key: `label-${k}`, label: k, render: (s) => s.labels[k] || '(empty)' })),
      ...(keys.length ? [] : [{ key: 'all', label: 'Series', render: () => 'all' }]),
      ...result.measures.map((m) => ({ key: m, label: `Latest ${MEASURE_LABELS[m] ? MEASURE_LABELS[m].toLowerCase() : m}`, num: true,
        render: (s) => { const v = lastValue(s.values[m]); return v === null ? f.dash : f.num(v, 3); } })),
    ], result.series, { caption: `${result.name} by ${keys.join(', ') || 'nothing'}`, testid: 'series-table',
      rowAttrs: (s) => ({ 'data-labels': JSON.stringify(s.labels) }) }));
}
