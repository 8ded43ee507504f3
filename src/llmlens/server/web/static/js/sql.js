// SQL: read-only ClickHouse SQL over the store (GET /api/v1/sql), the schema beside the editor
// (GET /api/v1/sql/schema), the result as a table and, when it has a time column and numbers, a chart.
// The query lives in the URL (?q=), so a result can be shared and reloaded.
import { getJSON } from './lib/api.js';
import { timeChart } from './lib/charts.js';
import { $, clear, emptyState, h, markReady, showError } from './lib/dom.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';

const EXAMPLES = [
  ['Spans per minute', 'SELECT toStartOfMinute(Timestamp) AS minute, count() AS spans,\n'
    + '       quantile(0.95)(Duration) / 1e6 AS p95_ms\nFROM otel_traces\n'
    + 'WHERE Timestamp > now() - INTERVAL 1 HOUR\nGROUP BY minute\nORDER BY minute'],
  ['Cost by model', 'SELECT RequestModel AS model, count() AS calls, sum(InputTokens) AS input_tokens,\n'
    + '       sum(OutputTokens) AS output_tokens, round(sum(CostUsd), 6) AS cost_usd\nFROM llm_calls\n'
    + 'GROUP BY model\nORDER BY cost_usd DESC'],
  ['Slowest spans', 'SELECT Timestamp, ServiceName, SpanName, Duration / 1e6 AS ms, TraceId\nFROM otel_traces\n'
    + 'ORDER BY Duration DESC\nLIMIT 20'],
];
const TIME_TYPE = /^(Nullable\()?(DateTime|Date)/;
const NUMBER_TYPE = /^(Nullable\()?(U?Int\d+|Float\d+|Decimal)/;
const MAX_SERIES = 6;

const editor = $('#sql-editor');
const form = $('#sql-form');
const message = $('#message');
const info = $('#result-info');
const result = $('#result');
const chart = $('#chart');

const run = latestOnly(async () => {
  clear(message);
  try {
    return await getJSON('/api/v1/sql', { query: editor.value.trim() });
  } catch (error) {  // no stale result under the error (latestOnly shows it)
    clear(result);
    chart.hidden = true;
    info.textContent = '';
    throw error;
  }
}, render);

function submit() {
  const query = editor.value.trim();
  if (!query) return;
  if (query !== state.get('q')) state.update({ q: query });
  run();
}

form.addEventListener('submit', (event) => { event.preventDefault(); submit(); });
editor.addEventListener('keydown', (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') {
    event.preventDefault();
    submit();
  }
});
window.addEventListener('popstate', () => { editor.value = state.get('q'); if (editor.value) run(); });

clear($('#examples'), EXAMPLES.map(([label, sql]) => h('button', {
  type: 'button', class: 'secondary', 'data-testid': 'example', onclick: () => { editor.value = sql; submit(); },
}, label)));

function render(answer) {
  const { columns, rows } = answer;
  const seconds = answer.statistics.elapsed_s;
  info.textContent = `${rows.length.toLocaleString()} row${rows.length === 1 ? '' : 's'} in ${(seconds * 1000).toFixed(1)} ms`
    + ` · ${Number(answer.statistics.rows_read).toLocaleString()} rows read`;
  if (!rows.length) {
    emptyState(result, 'No rows.', h('p', {}, 'The query ran and returned nothing.'));
  } else {
    clear(result, resultTable(columns, rows));
  }
  drawChart(columns, rows);
}

function resultTable(columns, rows) {
  return h('table', { 'data-testid': 'sql-table' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: NUMBER_TYPE.test(c.type) ? 'num' : null },
      c.name, h('small', {}, c.type))))),
    h('tbody', {}, rows.map((row) => h('tr', {}, row.map((value, i) => h('td', {
      class: NUMBER_TYPE.test(columns[i].type) ? 'num' : null, title: shown(value),
    }, shown(value)))))));
}

function shown(value) {
  if (value === null) return 'NULL';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** A line per numeric column over the first time column, when the result has both. */
function drawChart(columns, rows) {
  const at = columns.findIndex((c) => TIME_TYPE.test(c.type));
  const numeric = columns.map((c, i) => i).filter((i) => i !== at && NUMBER_TYPE.test(columns[i].type)).slice(0, MAX_SERIES);
  if (at < 0 || !numeric.length || rows.length < 2) {
    chart.hidden = true;
    return;
  }
  const sorted = rows.filter((r) => r[at] !== null).sort((a, b) => isoTime(a[at]).localeCompare(isoTime(b[at])));
  const peak = (i) => Math.max(0, ...sorted.map((r) => Math.abs(Number(r[i]) || 0)));
  // A second column ten times larger or smaller than the first gets the right-hand axis.
  const apart = (i) => i !== numeric[0] && Math.max(peak(i), peak(numeric[0])) > 10 * Math.max(1e-12, Math.min(peak(i), peak(numeric[0])));
  const fmt = (v) => (v === null || v === undefined ? '—' : Number(v).toLocaleString(undefined, { maximumFractionDigits: 3 }));
  chart.hidden = false;
  timeChart(chart, {
    title: `${numeric.map((i) => columns[i].name).join(', ')} by ${columns[at].name}`,
    buckets: sorted.map((r) => isoTime(r[at])),
    series: numeric.map((i) => ({ label: columns[i].name, scale: apart(i) ? 'y2' : 'y',
      values: sorted.map((r) => (r[i] === null ? null : Number(r[i]))) })),
    fmt, fmt2: fmt,
  });
}

/** ClickHouse's `2026-01-02 03:04:05.123456789` (UTC) or `2026-01-02` -> an ISO time Date.parse reads. */
function isoTime(value) {
  const text = String(value);
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return `${text}T00:00:00Z`;
  const [date, time = '00:00:00'] = text.split(' ');
  return `${date}T${time.slice(0, 12)}Z`;
}

async function loadSchema() {
  const el = $('#schema');
  try {
    const schema = await getJSON('/api/v1/sql/schema');
    clear(el, schema.tables.map((t) => h('details', { 'data-table': t.name },
      h('summary', {}, insertButton(t.name), h('span', { class: 'type' }, t.rows === null ? t.engine : `${t.rows.toLocaleString()} rows`)),
      h('ul', {}, t.columns.map((c) => h('li', {}, insertButton(c.name), h('span', { class: 'type' }, c.type)))))));
  } catch (error) {
    showError(el, error);
  }
}

function insertButton(name) {
  return h('button', { type: 'button', class: 'name', onclick: (event) => { event.preventDefault(); insert(name); } }, name);
}

function insert(text) {
  const { selectionStart: start, selectionEnd: end, value } = editor;
  editor.value = value.slice(0, start) + text + value.slice(end);
  editor.focus();
  editor.setSelectionRange(start + text.length, start + text.length);
}

editor.value = state.get('q') || EXAMPLES[0][1];
loadSchema();
if (state.get('q')) run();
else markReady('empty');
