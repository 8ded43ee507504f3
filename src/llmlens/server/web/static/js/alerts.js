// Alerts: firing and pending alerts (GET /api/v1/alerts), the budget panel (GET /api/v1/budgets),
// every rule with its evaluation and a mute (GET /api/v1/rules, POST .../mute), and the history of
// state changes (GET /api/v1/alerts/history). ?rule=NAME&alert=FINGERPRINT, the address alert
// notifications link to, highlights that rule and alert.
import { getJSON, postJSON } from './lib/api.js';
import { budgetPanel } from './lib/budgets.js';
import { $, clear, h, showError } from './lib/dom.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { timebar } from './lib/timebar.js';

const MUTE_FOR = [['1h', 'for 1 hour'], ['4h', 'for 4 hours'], ['1d', 'for 1 day'], ['', 'until unmuted']];
const STATE_TONE = { firing: 'error', pending: 'warn', resolved: 'ok', inactive: 'ok' };
const form = $('#filters');
form.addEventListener('submit', (event) => event.preventDefault());

const load = latestOnly(async () => {
  const rule = state.get('rule');
  const [alerts, rules, history, budgets] = await Promise.all([
    getJSON('/api/v1/alerts'), getJSON('/api/v1/rules'),
    getJSON('/api/v1/alerts/history', { ...state.timeParams(), rule, limit: 200 }),
    // A budget query that fails (or times out) is shown in its panel; the alerts still show.
    getJSON('/api/v1/budgets').catch((error) => ({ error })),
  ]);
  return { alerts: alerts.data.alerts, groups: rules.data.groups, events: history.data.events, budgets };
}, render);
timebar(form, load);  // the first load, once the range is known

function badge(value) { return h('span', { class: `badge ${STATE_TONE[value] || ''}`, 'data-state': value }, value); }

function groupText(labels) {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(', ') : h('span', { class: 'muted' }, '(all)');
}

function value(v) {
  const n = Number(v);
  return Number.isFinite(n) ? f.num(Number(n.toPrecision(4)), 6) : String(v);
}

function ruleHref(rule, fingerprint = null) {
  const p = new URLSearchParams({ rule });
  if (fingerprint) p.set('alert', fingerprint);
  return `/alerts?${p}`;
}

/** The Traces page and the Overview, filtered to the alert's group over its window. */
function exploreLinks(alert) {
  const x = alert.explore;
  if (!x) return f.dash;
  const traces = new URLSearchParams({ q: x.traces_query, range: 'custom', start: x.start });
  const overview = new URLSearchParams({ ...x.overview_filters, range: 'custom', start: x.start });
  return h('span', { class: 'links' },
    h('a', { href: `/traces?${traces}`, 'data-link': 'traces', title: x.traces_query }, 'Traces'), ' · ',
    h('a', { href: `/?${overview}`, 'data-link': 'overview' }, 'Overview'));
}

function since(alert) {
  return h('span', {}, f.time(alert.activeAt), alert.firedAt && alert.firedAt !== alert.activeAt
    ? h('span', { class: 'muted' }, h('br'), `firing since ${f.time(alert.firedAt)}`) : null);
}

function renderActive(alerts) {
  if (!alerts.length) {
    clear($('#active'), h('p', { class: 'muted', 'data-testid': 'no-alerts' }, 'Nothing is firing or pending.'));
    return;
  }
  clear($('#active'), table([
    { key: 'state', label: 'State', render: (a) => h('span', {}, badge(a.state), a.muted ? [' ', h('span', { class: 'badge' }, 'muted')] : null) },
    { key: 'rule', label: 'Rule', render: (a) => h('a', { href: ruleHref(a.rule, a.fingerprint) }, a.rule) },
    { key: 'group', label: 'Group', render: (a) => groupText(Object.fromEntries(Object.entries(a.labels)
      .filter(([k]) => k !== 'alertname' && !(k in (ruleLabels[a.rule] || {}))))) },
    { key: 'value', label: 'Value', num: true, render: (a) => value(a.value) },
    { key: 'since', label: 'Since', render: since },
    { key: 'summary', label: 'Summary', render: (a) => a.annotations.summary || a.annotations.description || f.dash },
    { key: 'links', label: 'Look into', render: exploreLinks },
  ], alerts, { caption: 'Firing and pending alerts', testid: 'alerts-table',
    rowAttrs: (a) => ({ 'data-rule': a.rule, 'data-fingerprint': a.fingerprint, 'data-state': a.state, 'data-value': a.value }) }));
}

let ruleLabels = {};

async function mute(rule, duration) {
  try {
    if (duration === null) await postJSON(`/api/v1/rules/${encodeURIComponent(rule)}/unmute`);
    else await postJSON(`/api/v1/rules/${encodeURIComponent(rule)}/mute`, { for: duration || undefined });
  } catch (error) {
    showError($('#message'), error);
    return;
  }
  load();
}

function muteControl(rule) {
  if (rule.muted) {
    const until = rule.mutedUntil && !rule.mutedUntil.startsWith('2200') ? `until ${f.time(rule.mutedUntil)}` : 'until unmuted';
    return h('span', { class: 'mute' }, h('span', { class: 'badge', 'data-testid': 'muted' }, `muted ${until}`), ' ',
      h('button', { type: 'button', class: 'secondary', 'data-action': 'unmute', onclick: () => mute(rule.name, null) }, 'Unmute'));
  }
  const id = `mute-${rule.name}`;
  const select = h('select', { id, 'aria-label': `Mute ${rule.name}` }, MUTE_FOR.map(([v, l]) => h('option', { value: v }, l)));
  return h('span', { class: 'mute' }, h('button', { type: 'button', class: 'secondary', 'data-action': 'mute',
    onclick: () => mute(rule.name, select.value) }, 'Mute'), ' ', select);
}

function renderRules(groups) {
  const rules = groups.flatMap((g) => g.rules.map((r) => ({ ...r, file: g.name })));
  ruleLabels = Object.fromEntries(rules.map((r) => [r.name, r.labels]));
  clear($('#rules'), table([
    { key: 'name', label: 'Rule', render: (r) => h('span', {}, h('a', { href: ruleHref(r.name), id: `rule-${r.name}` }, r.name),
      h('br'), h('span', { class: 'muted' }, r.line ? `${r.file}:${r.line}` : r.file)) },
    { key: 'state', label: 'State', render: (r) => badge(r.state) },
    { key: 'query', label: 'Condition', render: (r) => h('span', {}, h('code', { class: 'mono' }, r.query),
      r.duration ? h('span', { class: 'muted' }, ` for ${f.msShort(r.duration * 1000)}`) : null, h('br'),
      h('span', { class: 'muted' }, r.description)) },
    { key: 'health', label: 'Last evaluation', render: (r) => h('span', {}, r.health === 'err' ? badge('error') : null,
      r.lastEvaluation.startsWith('0001') ? h('span', { class: 'muted' }, 'not yet') : f.time(r.lastEvaluation),
      r.lastError ? h('div', { class: 'error-text', 'data-testid': 'rule-error' }, r.lastError) : null) },
    { key: 'evaluationTime', label: 'Took', num: true, render: (r) => (r.lastEvaluation.startsWith('0001') ? f.dash : f.ms(r.evaluationTime * 1000)) },
    { key: 'mute', label: 'Notifications', render: muteControl },
  ], rules, { caption: 'Alert rules', testid: 'rules-table',
    rowAttrs: (r) => ({ 'data-rule': r.name, 'data-state': r.state, 'data-health': r.health, 'data-muted': String(r.muted) }) }));
}

function renderHistory(events) {
  const rule = state.get('rule');
  clear($('#history-scope'), rule ? h('span', {}, `Changes of ${rule} only · `,
    h('a', { href: '/alerts', 'data-testid': 'all-history' }, 'all rules')) : null);
  if (!events.length) {
    clear($('#history'), h('p', { class: 'muted', 'data-testid': 'no-history' }, 'No state changes in this time range.'));
    return;
  }
  clear($('#history'), table([
    { key: 'at', label: 'At', render: (e) => f.time(e.at) },
    { key: 'rule', label: 'Rule', render: (e) => h('a', { href: ruleHref(e.rule, e.fingerprint) }, e.rule) },
    { key: 'group', label: 'Group', render: (e) => groupText(e.labels) },
    { key: 'change', label: 'Change', render: (e) => h('span', {}, badge(e.from), ' → ', badge(e.to)) },
    { key: 'value', label: 'Value', num: true, render: (e) => value(e.value) },
  ], events, { caption: 'Alert history', testid: 'history-table',
    rowAttrs: (e) => ({ 'data-rule': e.rule, 'data-fingerprint': e.fingerprint, 'data-to': e.to }) }));
}

let scrolledTo = null;  // auto-refresh re-marks the rows but leaves the scrolling to the reader

/** Mark what ?rule= and ?alert= name, and bring it into view. */
function highlight(alerts) {
  const rule = state.get('rule');
  const fingerprint = state.get('alert');
  for (const row of document.querySelectorAll('tr.highlight')) row.classList.remove('highlight');
  clear($('#deeplink'));
  if (!rule) return;
  const marked = [...document.querySelectorAll('tr[data-rule]')]
    .filter((row) => row.dataset.rule === rule && (!fingerprint || !row.dataset.fingerprint || row.dataset.fingerprint === fingerprint));
  for (const row of marked) row.classList.add('highlight');
  const ruleRow = document.querySelector(`#rules tr[data-rule="${CSS.escape(rule)}"]`);
  const alertRow = fingerprint && document.querySelector(`#active tr[data-fingerprint="${CSS.escape(fingerprint)}"]`);
  if (!ruleRow) {
    clear($('#deeplink'), h('div', { class: 'message error', 'data-testid': 'unknown-rule' }, `No rule named ${rule} is loaded here.`));
  } else if (fingerprint && !alertRow) {
    clear($('#deeplink'), h('div', { class: 'message empty', 'data-testid': 'alert-gone' },
      `This alert of ${rule} is no longer pending or firing; its changes are in the history below.`));
  } else if (alertRow && alerts.length) {
    clear($('#deeplink'), h('p', { class: 'muted' }, `Showing ${rule}.`));
  }
  const target = `${rule}/${fingerprint}`;
  if (scrolledTo !== target) (alertRow || ruleRow)?.scrollIntoView({ block: 'center' });
  scrolledTo = target;
}

function render({ alerts, groups, events, budgets }) {
  clear($('#message'));
  renderRules(groups);  // first: the alerts table leaves the rules' own labels out of the group
  renderActive(alerts);
  if (budgets.error) showError($('#budgets'), budgets.error);
  else budgetPanel($('#budgets'), budgets.data);
  renderHistory(events);
  highlight(alerts);
  const firing = alerts.filter((a) => a.state === 'firing').length;
  document.title = `${firing ? `(${firing}) ` : ''}Alerts · llmlens`;
}
