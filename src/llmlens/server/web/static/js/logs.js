// Logs: search by time, service, severity, text and trace id (GET /api/v1/logs); lines link to traces.
import { getJSON } from './lib/api.js';
import { $, clear, emptyState, h, otelHint } from './lib/dom.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { timebar } from './lib/timebar.js';

const SEVERITIES = ['', 'debug', 'info', 'warn', 'error', 'fatal'];
const form = $('#filters');
const inputs = {
  q: h('input', { id: 'f-q', name: 'q', type: 'search', size: 24 }),
  service: h('input', { id: 'f-service', name: 'service', size: 14 }),
  severity: h('select', { id: 'f-severity', name: 'severity' }, SEVERITIES.map((s) => h('option', { value: s }, s ? `${s} and above` : 'Any'))),
  trace_id: h('input', { id: 'f-trace_id', name: 'trace_id', size: 34, class: 'mono' }),
};
const labels = { q: 'Text contains', service: 'Service', severity: 'Severity', trace_id: 'Trace id' };
for (const [key, input] of Object.entries(inputs)) {
  input.value = state.get(key);
  form.append(h('label', { for: input.id }, labels[key], input));
}
form.append(h('button', { type: 'submit', id: 'search-logs' }, 'Search'));
const PAGE = 200;
const currentFilters = () => Object.fromEntries(Object.keys(inputs).map((k) => [k, state.get(k)]));
const fetchPage = (cursor) => getJSON('/api/v1/logs', { ...state.timeParams(), ...currentFilters(), limit: PAGE, cursor });
let shown = [];
let nextCursor = null;
const show = (data, append) => {
  shown = append ? [...shown, ...data.items] : data.items;
  nextCursor = data.next_cursor || null;
  clear($('#message'));
  render(shown, Object.values(currentFilters()).some(Boolean));
};
let loads = 0;  // a page asked for before the list was reloaded belongs to the old list
const load = latestOnly(() => { loads += 1; return fetchPage(null); }, (data) => show(data, false));
// The next page continues after the last line shown (a keyset cursor: new lines do not shift it).
const more = latestOnly(() => { const of = loads; return fetchPage(nextCursor).then((data) => ({ data, of })); },
  ({ data, of }) => { if (of === loads) show(data, true); });
$('#more').addEventListener('click', () => more());
form.addEventListener('submit', (event) => {
  event.preventDefault();
  state.update(Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()])));
  load();
});
timebar(form, load);  // the first load, once the range is known


function render(items, filtered) {
  $('#result-count').textContent = `${f.int(items.length)} line${items.length === 1 ? '' : 's'}${nextCursor ? ', newest first (more available)' : ''}`;
  $('#more').hidden = !nextCursor;
  if (!items.length) {
    emptyState($('#results'), filtered ? 'No log lines match these filters in this time range.' : 'No logs in this time range yet.',
      ...(filtered ? [] : otelHint()));
    return;
  }
  clear($('#results'), table([
    { key: 'time', label: 'Time', render: (r) => f.time(r.time) },
    { key: 'severity', label: 'Severity', render: (r) => h('span', { class: `sev-${(r.severity || '').toUpperCase()}` }, r.severity || String(r.severity_number)) },
    { key: 'service', label: 'Service' },
    { key: 'body', label: 'Message', render: (r) => h('span', { class: 'mono' }, r.body) },
    { key: 'trace_id', label: 'Trace', render: (r) => (r.trace_id
      ? h('a', { href: `/traces/${r.trace_id}${r.span_id ? `?span=${r.span_id}` : ''}`, 'data-trace-link': r.trace_id, class: 'mono' }, f.shortId(r.trace_id, 10))
      : f.dash) },
  ], items, { caption: 'Log lines', testid: 'logs-table', rowAttrs: (r) => ({ 'data-trace-id': r.trace_id || '' }) }));
}

