// Sessions: conversations grouped by session id (GET /api/v1/sessions).
import { getJSON } from './lib/api.js';
import { cost } from './lib/cost.js';
import { $, clear, emptyState, h } from './lib/dom.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { timebar } from './lib/timebar.js';

const form = $('#filters');
const inputs = {};
for (const [key, label] of [['service', 'Service'], ['app', 'App'], ['user', 'User']]) {
  inputs[key] = h('input', { id: `f-${key}`, name: key, size: 14, value: state.get(key) });
  form.append(h('label', { for: `f-${key}` }, label, inputs[key]));
}
form.append(h('button', { type: 'submit' }, 'Apply'));
const PAGE = 100;
const fetchPage = (cursor) => getJSON('/api/v1/sessions', {
  ...state.timeParams(), ...Object.fromEntries(Object.keys(inputs).map((k) => [k, state.get(k)])), limit: PAGE, cursor,
});
let shown = [];
let nextCursor = null;
const show = (data, append) => {
  shown = append ? [...shown, ...data.items] : data.items;
  nextCursor = data.next_cursor || null;
  clear($('#message'));
  render(shown);
};
let loads = 0;  // a page asked for before the list was reloaded belongs to the old list
const load = latestOnly(() => { loads += 1; return fetchPage(null); }, (data) => show(data, false));
const more = latestOnly(() => { const of = loads; return fetchPage(nextCursor).then((data) => ({ data, of })); },
  ({ data, of }) => { if (of === loads) show(data, true); });
$('#more').addEventListener('click', () => more());
form.addEventListener('submit', (event) => {
  event.preventDefault();
  state.update(Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()])));
  load();
});
timebar(form, load);  // the first load, once the range is known


function render(items) {
  $('#result-count').textContent = `${f.int(items.length)} session${items.length === 1 ? '' : 's'}${nextCursor ? ' (more available)' : ''}`;
  $('#more').hidden = !nextCursor;
  if (!items.length) {
    emptyState($('#results'), 'No sessions in this time range.', h('p', {},
      'Calls are grouped into sessions by their session id: set ', h('code', {}, 'session.id'), ' or ',
      h('code', {}, 'gen_ai.conversation.id'), ' on spans (in Python: ', h('code', {}, 'with llmlens.context(session_id=...)'), ').'));
    return;
  }
  clear($('#results'), table([
    { key: 'session_id', label: 'Session', render: (r) => h('a', { href: `/sessions/${encodeURIComponent(r.session_id)}`, 'data-session-link': r.session_id }, r.session_id) },
    { key: 'end_time', label: 'Last activity', render: (r) => f.time(r.end_time) },
    { key: 'turns', label: 'Turns', num: true, render: (r) => f.int(r.turns) },
    { key: 'duration_ms', label: 'Duration', num: true, render: (r) => f.ms(r.duration_ms) },
    { key: 'tokens', label: 'Tokens in / out', num: true, render: (r) => `${f.int(r.input_tokens)} / ${f.int(r.output_tokens)}` },
    { key: 'cost_usd', label: 'Cost', num: true, render: (r) => cost(r.cost_usd, r.unpriced_requests, r.llm_calls) },
    { key: 'errors', label: 'Errors', num: true, render: (r) => (r.errors ? h('span', { class: 'badge error' }, f.int(r.errors)) : '0') },
    { key: 'users', label: 'Users', render: (r) => r.users.join(', ') || f.dash },
    { key: 'apps', label: 'Apps', render: (r) => r.apps.join(', ') || f.dash },
  ], items, { caption: 'Sessions', testid: 'sessions-table',
    rowAttrs: (r) => ({ 'data-session-id': r.session_id, 'data-turns': r.turns, 'data-cost': r.cost_usd }) }));
}

