// The budget panel of the Alerts and Costs pages (GET /api/v1/budgets): per budget and group, the
// spend so far in the calendar period, the burn rate, where that rate ends the period, and the
// forecast for the period's end, against the amount.
import { h } from './dom.js';
import * as f from './format.js';
import { table } from './table.js';

const PERIOD_WORD = { day: 'today', week: 'this week', month: 'this month' };

function scope(budget, group) {
  const parts = [...Object.entries(budget.filters), ...Object.entries(group.labels)].map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(', ') : 'all LLM calls';
}

// Spend against the amount: a bar that turns amber past 80% and red past 100%.
function gauge(fraction) {
  if (fraction === null || fraction === undefined) return null;
  const tone = fraction >= 1 ? 'error' : fraction >= 0.8 ? 'warn' : 'ok';
  return h('span', { class: `gauge ${tone}`, role: 'img', 'aria-label': `${f.pct(fraction)} of the budget` },
    h('span', { class: 'fill', style: { width: `${Math.min(100, fraction * 100).toFixed(1)}%` } }));
}

function money(value, fraction) {
  return h('span', {}, f.usd(value), fraction === null || fraction === undefined ? null
    : h('span', { class: 'muted' }, ` (${f.pct(fraction, 0)})`));
}

/** Render the panel's content into `el` from the API's `data`. */
export function budgetPanel(el, data) {
  const rows = data.budgets.flatMap((budget) => budget.groups.map((group) => ({ budget, group })));
  if (!data.budgets.length) {
    el.replaceChildren(h('p', { class: 'muted', 'data-testid': 'no-budgets' },
      'No budget rules: add a rule with signal budget, budget_burn_rate or spend_forecast (see docs/alerts.md).'));
    return;
  }
  const empty = data.budgets.filter((b) => !b.groups.length)
    .map((b) => h('p', { class: 'muted' }, `${b.rules.join(', ')}: no spend ${PERIOD_WORD[b.period]} in any ${b.group_by.join(', ')}.`));
  el.replaceChildren(table([
    { key: 'budget', label: 'Budget', render: ({ budget, group }) => h('span', {},
      h('strong', {}, budget.rules.join(', ')), h('br'), h('span', { class: 'muted' }, scope(budget, group))) },
    { key: 'period', label: 'Period', render: ({ budget }) => h('span', { title: `${f.time(budget.period_start)} to ${f.time(budget.period_end)} (${data.timezone})` },
      budget.period, h('br'), h('span', { class: 'muted' }, `ends ${f.time(budget.period_end)}`)) },
    { key: 'amount', label: 'Amount', num: true, render: ({ budget }) => (budget.amount_usd === null ? f.dash : f.usd(budget.amount_usd)) },
    { key: 'spent', label: 'Spent so far', num: true, render: ({ group }) => h('span', {}, money(group.spent_usd, group.spent_fraction),
      h('br'), gauge(group.spent_fraction)) },
    { key: 'rate', label: 'Burn rate', num: true, render: ({ budget, group }) => h('span', {}, `${f.usd(group.burn_rate_usd_per_hour)}/h`,
      h('br'), h('span', { class: 'muted' }, `last ${budget.burn_window}`)) },
    { key: 'at_rate', label: 'At that rate', num: true, render: ({ budget, group }) => money(group.projected_at_burn_rate_usd,
      budget.amount_usd ? group.projected_at_burn_rate_usd / budget.amount_usd : null) },
    { key: 'forecast', label: 'Forecast at period end', num: true, render: ({ group }) => h('span', {},
      money(group.forecast_usd, group.forecast_fraction), h('br'), gauge(group.forecast_fraction)) },
  ], rows, { caption: 'Budgets', testid: 'budgets-table', rowAttrs: ({ budget, group }) => ({
    'data-rules': budget.rules.join(','), 'data-labels': JSON.stringify(group.labels),
    'data-amount': budget.amount_usd ?? '', 'data-spent': group.spent_usd, 'data-rate': group.burn_rate_usd_per_hour,
    'data-at-rate': group.projected_at_burn_rate_usd, 'data-forecast': group.forecast_usd }) }),
  ...empty,
  h('p', { class: 'muted small' }, `Periods are calendar days, weeks (from Monday) and months in ${data.timezone}. `,
    'The burn rate is the spend of the last window; the forecast adds the spend expected for each hour left from ',
    'the same hour on recent days like this one (docs/alerts.md, Spend forecast).'));
}
