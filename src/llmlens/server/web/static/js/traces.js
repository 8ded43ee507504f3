// Traces: search by query language (GET /api/v1/search) or by filters (GET /api/v1/traces).
import { getJSON } from './lib/api.js';
import { comparePicker, pickColumn } from './lib/comparepick.js';
import { cost } from './lib/cost.js';
import { $, clear, emptyState, h, markReady, otelHint, setBusy, showError } from './lib/dom.js';
import * as f from './lib/format.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { timebar } from './lib/timebar.js';

const EXAMPLES = [
  '{ duration > 2s }',
  '{ status = error }',
  '{ span.gen_ai.usage.input_tokens > 100 }',
  '{ name =~ "retriev.*" } && { span.gen_ai.operation.name = "chat" }',
  '{ cost > 0.001 || ttft > 500ms }',
];
// Examples naming a service and a model take the busiest of this store's (a made-up name finds nothing).
const NAMED_EXAMPLES = [
  ({ model }) => `{ span.gen_ai.request.model = ${JSON.stringify(model)} && status = error }`,
  ({ service }) => `{ resource.service.name = ${JSON.stringify(service)} && span.gen_ai.usage.input_tokens > 100 }`,
];
const FILTERS = [
  ['service', 'Service', 'text'], ['name', 'Span name', 'text'], ['model', 'Model', 'text'],
  ['status', 'Status', ['', 'ok', 'error']], ['min_duration_ms', 'Min duration (ms)', 'number'],
  ['max_duration_ms', 'Max duration (ms)', 'number'], ['attr', 'Attribute key:value', 'text'],
];
const qBox = $('#q');
const form = $('#filters');
let nextCursor = null;
let generation = 0;

qBox.value = state.get('q');
const exampleChip = (example) => h('button', { type: 'button', onclick: () => { qBox.value = example; runQuery(); } }, example);
$('#examples').append(h('span', { class: 'muted' }, 'Examples:'), ...EXAMPLES.map(exampleChip));
getJSON('/api/v1/llm/stats', { start: '-24h', group_by: ['service', 'model'] }).then((stats) => {
  const top = stats.groups.find((g) => g.service && g.model);
  if (top) $('#examples').append(...NAMED_EXAMPLES.map((make) => exampleChip(make(top))));
}).catch(() => { /* the examples without names remain */ });
$('#query-form').addEventListener('submit', (event) => { event.preventDefault(); runQuery(); });
qBox.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); runQuery(); }
});

const inputs = {};
for (const [key, label, type] of FILTERS) {
  const input = Array.isArray(type)
    ? h('select', { id: `f-${key}`, name: key }, type.map((v) => h('option', { value: v }, v || 'Any')))
    : h('input', { id: `f-${key}`, name: key, type, size: type === 'number' ? 8 : 14, min: type === 'number' ? 0 : null });
  input.value = state.get(key);
  inputs[key] = input;
  form.append(h('label', { for: `f-${key}` }, label, input));
}
form.append(h('button', { type: 'submit', id: 'apply-filters' }, 'Apply filters'));
form.addEventListener('submit', (event) => {
  event.preventDefault();
  qBox.value = '';
  state.update({ q: null, ...Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value])) });
  load();
});
timebar(form, () => load());  // the first load, once the range is known
window.addEventListener('popstate', () => { qBox.value = state.get('q'); });

function runQuery() {
  state.update({ q: qBox.value.trim() || null });
  load();
}

async function load(append = false) {
  const mine = ++generation;
  setBusy(true);
  const q = state.get('q');
  const time = state.timeParams();
  try {
    let data;
    if (q) {
      data = await getJSON('/api/v1/search', { q, ...time, limit: 50, cursor: append ? nextCursor : null });
    } else {
      const filters = Object.fromEntries(FILTERS.map(([k]) => [k, state.get(k)]));
      data = await getJSON('/api/v1/traces', { ...filters, ...time, limit: 50, cursor: append ? nextCursor : null });
    }
    if (mine !== generation) return;
    clear($('#message'));
    render(data, append, q);
    markReady();
  } catch (error) {
    if (mine !== generation) return;
    showError($('#message'), error, error.parameter === 'q' ? q : null);
    clear($('#results'));
    $('#result-count').textContent = '';
    markReady('error');
  } finally {
    if (mine === generation) setBusy(false);
  }
}

let shown = [];

function render(data, append, q) {
  shown = append ? [...shown, ...data.items] : data.items;
  nextCursor = data.next_cursor || null;
  $('#more').hidden = !nextCursor;
  $('#result-count').textContent = `${shown.length} trace${shown.length === 1 ? '' : 's'}${nextCursor ? ' (more available)' : ''}`;
  if (!shown.length) {
    emptyState($('#results'), q ? 'No trace matches this query in this time range.'
      : 'No traces in this time range.', ...(q ? [h('p', {}, 'Try a wider time range or one of the examples.')] : otelHint()));
    return;
  }
  clear($('#results'), table([
    pickColumn,
    { key: 'start_time', label: 'Start', render: (r) => f.time(r.start_time) },
    { key: 'root_service', label: 'Service', render: (r) => r.root_service || f.dash },
    { key: 'root_name', label: 'Root span', render: (r) => h('a', { href: `/traces/${encodeURIComponent(r.trace_id)}`,
      'data-trace-link': r.trace_id }, r.root_name || h('span', { class: 'muted', 'data-no-root': '' },
      `root span not received yet · ${f.shortId(r.trace_id)}`)) },
    { key: 'duration_ms', label: 'Duration', num: true, render: (r) => f.ms(r.duration_ms) },
    { key: 'span_count', label: 'Spans', num: true, render: (r) => f.int(r.span_count) },
    { key: 'llm_calls', label: 'LLM calls', num: true, render: (r) => f.int(r.llm_calls) },
    { key: 'tokens', label: 'Tokens in / out', num: true, render: (r) => `${f.int(r.input_tokens)} / ${f.int(r.output_tokens)}` },
    { key: 'cost_usd', label: 'Cost', num: true, render: (r) => cost(r.cost_usd, r.unpriced_requests, r.llm_calls) },
    { key: 'error', label: 'Status', render: (r) => h('span', { class: `badge ${r.error ? 'error' : 'ok'}` }, r.error ? 'error' : 'ok') },
  ], shown, { caption: 'Matching traces', testid: 'traces-table',
    rowAttrs: (r) => ({ 'data-trace-id': r.trace_id }) }));
}

$('#more').addEventListener('click', () => load(true));
comparePicker($('#h-results').parentElement);
