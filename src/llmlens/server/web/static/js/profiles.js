// Profiles: one service's CPU samples as a flame graph (GET /api/v1/profiles/flamegraph), filtered by
// span name, thread, or one span (the trace view's "Profile of this span"), beside its top functions;
// or the diff of two time ranges or two span names (GET /api/v1/profiles/diff). State in the URL.
import { getJSON } from './lib/api.js';
import { $, clear, emptyState, h } from './lib/dom.js';
import { FlameGraph, topFunctions } from './lib/flamegraph.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { filterSelect, timebar } from './lib/timebar.js';

const UNITS = { m: 60, h: 3600, d: 86400 };
const form = $('#filters');
form.addEventListener('submit', (event) => event.preventDefault());  // filters apply on change

const graph = new FlameGraph($('#flamegraph'), { format: (n) => f.int(Math.round(n)), onFocus: () => summarise() });
let current = null;  // the last answer: { tree, diff }

const serviceFilter = filterSelect('service', 'Service', { onChange: () => load(), allLabel: 'Choose a service' });
const spanName = textFilter('span_name', 'Span name', 'all spans');
const thread = textFilter('thread', 'Thread', 'all threads');
const view = h('select', { id: 'f-view', name: 'view' },
  h('option', { value: '' }, 'Flame graph'), h('option', { value: 'diff' }, 'Diff'));
view.value = state.get('view');
view.addEventListener('change', () => { state.update({ view: view.value || null }); showDiffControls(); load(); });
// The profile types the service sent (CPU samples from llmlens's SDK by default; wall, memory, ...).
const typeSelect = h('select', { id: 'f-type', name: 'type' });
typeSelect.addEventListener('change', () => { state.update({ type: typeSelect.value || null }); load(); });
form.append(serviceFilter, h('label', { for: 'f-type' }, 'Profile', typeSelect), spanName, thread,
  h('label', { for: 'f-view' }, 'View', view));

function textFilter(key, label, placeholder) {
  const input = h('input', { id: `f-${key}`, name: key, type: 'text', placeholder, value: state.get(key) });
  input.addEventListener('change', () => { state.update({ [key]: input.value.trim() || null }); load(); });
  return h('label', { for: `f-${key}` }, label, input);
}

// --- the diff's two sides ---------------------------------------------------------------------

function rangeSeconds() {
  const { start, end } = state.timeParams();
  const match = /^-(\d+)([mhd])$/.exec(start || '');
  if (match) return Number(match[1]) * UNITS[match[2]];
  return Math.max(60, ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000);
}

function toLocalInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The diff's parameters: the URL's, else the page's range (comparison) against the one before it (baseline). */
function diffParams() {
  if (state.get('compare') === 'spans') {
    return { ...state.timeParams(), baseline_span_name: state.get('b_span'), comparison_span_name: state.get('c_span') };
  }
  const length = rangeSeconds() * 1000;
  const { end } = state.timeParams();
  const until = end ? Date.parse(end) : Date.now();
  const iso = (ms) => new Date(ms).toISOString();
  return {
    baseline_start: state.get('b_start') || iso(until - 2 * length), baseline_end: state.get('b_end') || iso(until - length),
    comparison_start: state.get('c_start') || iso(until - length), comparison_end: state.get('c_end') || iso(until),
  };
}

function showDiffControls() {
  const box = $('#diff-controls');
  box.hidden = view.value !== 'diff';
  if (box.hidden) return;
  const mode = h('select', { id: 'd-compare' }, h('option', { value: '' }, 'two time ranges'),
    h('option', { value: 'spans' }, 'two span names'));
  mode.value = state.get('compare');
  mode.addEventListener('change', () => { state.update({ compare: mode.value || null }); showDiffControls(); load(); });
  const fields = [h('label', { for: 'd-compare' }, 'Compare', mode)];
  const inputs = {};
  if (mode.value === 'spans') {
    for (const [key, label] of [['b_span', 'Baseline span name'], ['c_span', 'Comparison span name']]) {
      inputs[key] = h('input', { id: `d-${key}`, type: 'text', value: state.get(key) });
      fields.push(h('label', { for: `d-${key}` }, label, inputs[key]));
    }
  } else {
    const p = diffParams();
    for (const [key, label, value] of [['b_start', 'Baseline from', p.baseline_start], ['b_end', 'Baseline to', p.baseline_end],
      ['c_start', 'Comparison from', p.comparison_start], ['c_end', 'Comparison to', p.comparison_end]]) {
      inputs[key] = h('input', { id: `d-${key}`, type: 'datetime-local', value: toLocalInput(value) });
      fields.push(h('label', { for: `d-${key}` }, label, inputs[key]));
    }
  }
  const apply = () => {
    const changes = {};
    for (const [key, input] of Object.entries(inputs)) {
      changes[key] = input.type === 'datetime-local' ? (input.value ? new Date(input.value).toISOString() : null)
        : (input.value.trim() || null);
    }
    state.update(changes);
    load();
  };
  fields.push(h('button', { type: 'button', onclick: apply, 'data-testid': 'diff-apply' }, 'Compare'));
  clear(box, ...fields);
}

// --- loading and drawing ------------------------------------------------------------------------

const load = latestOnly(async () => {
  const time = state.timeParams();
  const { services } = await getJSON('/api/v1/profiles/services', time);
  let service = state.get('service');
  const names = [...new Set(services.map((s) => s.service))];
  if (!service && names.length) {
    service = names[0];
    state.update({ service }, { replace: true });
  }
  if (!service) return { names, types: [], tree: null };
  const types = services.filter((s) => s.service === service).map((s) => s.profile_type);
  const type = types.includes(state.get('type')) ? state.get('type') : (types.includes('process_cpu') ? 'process_cpu' : types[0]);
  const filters = { service, thread: state.get('thread'), profile_type: type };
  if (state.get('view') === 'diff') {
    return { names, types, type, diff: true,
      tree: await getJSON('/api/v1/profiles/diff', { ...filters, ...diffParams(), max_nodes: 50000 }) };
  }
  const tree = await getJSON('/api/v1/profiles/flamegraph', {
    ...time, ...filters, span_name: state.get('span_name'), span_id: state.get('span_id'),
    trace_id: state.get('trace_id'), max_nodes: 50000,
  });
  return { names, types, type, diff: false, tree };
}, render);

function render({ names, types, type, tree, diff }) {
  serviceFilter.setChoices(names);
  const label = (t) => ({ process_cpu: 'CPU', wall: 'Wall clock', memory: 'Memory' }[t] || t);
  typeSelect.replaceChildren(...(types.length ? types : ['process_cpu']).map((t) => h('option', { value: t }, label(t))));
  typeSelect.value = type || 'process_cpu';
  renderSpanBanner();
  clear($('#message'));
  const total = tree ? (diff ? tree.baseline + tree.comparison : tree.value) : 0;
  $('#content').hidden = !total;
  if (!tree) {
    emptyState($('#message'), 'No profiles in this time range yet.',
      h('p', {}, 'Turn on the SDK\'s sampler (', h('code', {}, 'llmlens.init(profiling=True)'),
        ') or point a Pyroscope SDK at this server (', h('code', {}, window.location.origin), ').'));
    return;
  }
  if (!total) {
    emptyState($('#message'), state.get('span_id') ? 'No samples were taken inside this span.' : 'No samples match these filters.',
      h('p', {}, state.get('span_id')
        ? 'A span shorter than the sampling interval (10 ms at 100 Hz), or one waiting on I/O, may have none.'
        : 'Try a longer time range, or clear the span name and thread.'));
    return;
  }
  current = { tree, diff };
  $('#fg-legend').hidden = !diff;
  graph.setData(tree, { diff });
  graph.search($('#fg-search').value);
  summarise();
  renderTop();
}

function summarise() {
  if (!current) return;
  const { tree, diff } = current;
  const focus = $('#flamegraph canvas')?.dataset.focus;
  const text = diff
    ? `baseline ${f.int(tree.baseline)} samples · comparison ${f.int(tree.comparison)} samples`
    : `${f.int(tree.value)} samples`;
  $('#fg-summary').textContent = focus && focus !== 'total' ? `${text} · zoomed to ${focus}` : text;
}

function renderTop() {
  const { tree, diff } = current;
  const link = (r) => h('button', { type: 'button', class: 'link', onclick: () => highlight(r.name) }, r.name);
  if (diff) {
    // By the change of each function's own share, largest first either way.
    const before = (r) => (tree.baseline ? r.baseline_self / tree.baseline : 0);
    const after = (r) => (tree.comparison ? r.comparison_self / tree.comparison : 0);
    const rows = topFunctions(tree, 30, (r) => Math.abs(after(r) - before(r)));
    clear($('#top-functions'), table([
      { key: 'name', label: 'Function', render: link },
      { key: 'baseline', label: 'Baseline', num: true, render: (r) => f.pct(before(r)) },
      { key: 'comparison', label: 'Comparison', num: true, render: (r) => f.pct(after(r)) },
      { key: 'change', label: 'Change', num: true, render: (r) => h('span', { class: after(r) > before(r) ? 'more' : 'less' },
        `${after(r) >= before(r) ? '+' : '−'}${f.pct(Math.abs(after(r) - before(r)))}`) },
    ], rows, { caption: 'Functions whose own share changed most', testid: 'top-functions',
      rowAttrs: (r) => ({ 'data-name': r.name }) }));
    return;
  }
  const rows = topFunctions(tree, 30);
  const share = (n) => f.pct(tree.value ? n / tree.value : 0);
  clear($('#top-functions'), table([
    { key: 'name', label: 'Function', render: link },
    { key: 'self', label: 'Self', num: true, render: (r) => share(r.self) },
    { key: 'total', label: 'Total', num: true, render: (r) => share(r.total) },
  ], rows, { caption: 'Functions by own samples', testid: 'top-functions', rowAttrs: (r) => ({ 'data-name': r.name, 'data-self': r.self }) }));
}

function highlight(name) {
  $('#fg-search').value = name;
  graph.search(name);
}

function renderSpanBanner() {
  const spanId = state.get('span_id');
  if (!spanId) { clear($('#span-banner')); return; }
  const traceId = state.get('trace_id');
  clear($('#span-banner'), h('div', { class: 'message empty', 'data-testid': 'span-banner' },
    h('strong', {}, 'Samples inside one span'), ' ',
    h('span', { class: 'mono' }, spanId), ' and the spans below it',
    traceId ? [' · ', h('a', { href: `/traces/${traceId}?span=${spanId}` }, 'back to the trace')] : null, ' · ',
    h('button', { type: 'button', class: 'link', onclick: () => { state.update({ span_id: null, trace_id: null }); load(); } },
      'all samples of the service')));
}

$('#fg-search').addEventListener('input', (event) => graph.search(event.target.value));
$('#fg-reset').addEventListener('click', () => graph.reset());
showDiffControls();
timebar(form, load);  // the first load, once the range is known
