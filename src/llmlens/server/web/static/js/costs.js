// Costs: spend by model, app, department, user or service over time (GET /api/v1/costs), and the
// budgets' spend, burn rate and forecast for their calendar periods (GET /api/v1/budgets).
import { getJSON } from './lib/api.js';
import { budgetPanel } from './lib/budgets.js';
import { timeChart } from './lib/charts.js';
import { cost } from './lib/cost.js';
import { $, clear, emptyState, h, otelHint, showError, tile } from './lib/dom.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { timebar } from './lib/timebar.js';

const DIMENSIONS = [['model', 'Model'], ['app', 'App'], ['department', 'Department'], ['user', 'User'], ['service', 'Service']];
const form = $('#filters');
form.addEventListener('submit', (event) => event.preventDefault());  // filters apply on change
const groupBy = h('select', { id: 'group-by', name: 'group_by' }, DIMENSIONS.map(([v, l]) => h('option', { value: v }, l)));
groupBy.value = state.get('group_by', 'model');
const loadCosts = latestOnly(
  () => getJSON('/api/v1/costs', { ...state.timeParams(), group_by: state.get('group_by', 'model') }),
  (data) => { clear($('#message')); render(data); },
);
// The budgets cover their own calendar periods, not the range picked here; they load beside the costs.
async function loadBudgets() {
  try {
    budgetPanel($('#budgets'), (await getJSON('/api/v1/budgets')).data);
  } catch (error) {
    showError($('#budgets'), error);
  }
}
function load() { loadBudgets(); return loadCosts(); }
groupBy.addEventListener('change', () => { state.update({ group_by: groupBy.value === 'model' ? null : groupBy.value }); load(); });
form.append(h('label', { for: 'group-by' }, 'Spend by', groupBy));
timebar(form, load);  // the first load, once the range is known


function render(data) {
  const t = data.totals;
  const dimension = DIMENSIONS.find(([v]) => v === data.group_by)[1];
  clear($('#tiles'),
    tile('cost', 'Total spend', cost(t.cost_usd, t.unpriced_requests, t.requests), t.cost_usd,
      t.unpriced_requests ? 'priced calls only' : ''),
    tile('per-1k', 'Spend per 1,000 tokens', t.cost_per_1k_tokens === null ? f.dash : f.usd(t.cost_per_1k_tokens), t.cost_per_1k_tokens, 'priced calls only'),
    tile('priced', 'Priced calls', f.int(t.priced_requests), t.priced_requests),
    tile('unpriced', 'Unpriced calls', f.int(t.unpriced_requests), t.unpriced_requests,
      t.unpriced_requests ? 'no price known: not in the cost' : 'every call priced', t.unpriced_requests ? 'warn' : ''),
    tile('tokens', 'Tokens in / out', `${f.int(t.input_tokens)} / ${f.int(t.output_tokens)}`, t.input_tokens + t.output_tokens));
  $('#content').hidden = t.requests === 0;
  if (t.requests === 0) {
    emptyState($('#message'), 'No LLM calls in this time range yet — point an OTel SDK at this server.', ...otelHint());
    return;
  }
  timeChart($('#chart-spend'), { title: `Spend by ${dimension.toLowerCase()}`, buckets: data.series.buckets, fmt: f.usd,
    series: data.series.keys.map((k) => ({ label: seriesLabel(k, data.breakdown), values: data.series.values[k] })) });
  clear($('#breakdown'), table([
    { key: 'key', label: dimension, render: (r) => r.key || h('span', { class: 'muted' }, '(none)') },
    { key: 'requests', label: 'Calls', num: true, render: (r) => f.int(r.requests) },
    { key: 'unpriced_requests', label: 'Unpriced', num: true, render: (r) => (r.unpriced_requests ? h('span', { class: 'badge warn' }, f.int(r.unpriced_requests)) : '0') },
    { key: 'tokens', label: 'Tokens in / out', num: true, render: (r) => `${f.int(r.input_tokens)} / ${f.int(r.output_tokens)}` },
    { key: 'cost_usd', label: 'Spend', num: true, render: (r) => cost(r.cost_usd, r.unpriced_requests, r.requests) },
    { key: 'cost_per_1k_tokens', label: 'Per 1,000 tokens', num: true, render: (r) => (r.cost_per_1k_tokens === null ? f.dash : f.usd(r.cost_per_1k_tokens)) },
    { key: 'share', label: 'Share', num: true, render: (r) => f.pct(r.share) },
  ], data.breakdown, { caption: `Spend by ${dimension}`, testid: 'costs-table',
    rowAttrs: (r) => ({ 'data-key': r.key, 'data-cost': r.cost_usd, 'data-requests': r.requests, 'data-unpriced': r.unpriced_requests }) }));
  if (!data.unpriced.length) {
    clear($('#unpriced'), h('p', { class: 'muted' }, 'Every call in this range has a price.'));
  } else {
    clear($('#unpriced'), h('p', {}, 'These calls have no known price, so they are not in the spend above. Add the model to a prices file (',
      h('code', {}, 'llmlens serve --prices-file'), ') to price them.'), table([
      { key: 'model', label: 'Model', render: (r) => r.model || '(unknown)' },
      { key: 'provider', label: 'Provider', render: (r) => r.provider || f.dash },
      { key: 'requests', label: 'Calls', num: true, render: (r) => f.int(r.requests) },
      { key: 'tokens', label: 'Tokens in / out', num: true, render: (r) => `${f.int(r.input_tokens)} / ${f.int(r.output_tokens)}` },
    ], data.unpriced, { caption: 'Unpriced calls', testid: 'unpriced-table' }));
  }
}

// A line's name says when its spend leaves calls out: an unpriced model's line is not a real $0.
function seriesLabel(key, breakdown) {
  const row = breakdown.find((r) => r.key === key);
  const name = key || '(none)';
  if (!row || !row.unpriced_requests) return name;
  return row.unpriced_requests >= row.requests ? `${name} (unpriced)` : `${name} (${row.unpriced_requests} calls unpriced)`;
}

