// Overview: LLM totals, time series and breakdowns from GET /api/v1/overview.
import { getJSON } from './lib/api.js';
import { barChart, PALETTE, timeChart } from './lib/charts.js';
import { cost } from './lib/cost.js';
import { $, clear, emptyState, h, otelHint, tile } from './lib/dom.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { filterSelect, timebar } from './lib/timebar.js';

const FILTERS = [['service', 'Service'], ['app', 'App'], ['department', 'Department'], ['model', 'Model']];
const form = $('#filters');
form.addEventListener('submit', (event) => event.preventDefault());  // filters apply on change
const load = latestOnly(
  () => getJSON('/api/v1/overview', { ...state.timeParams(), ...Object.fromEntries(FILTERS.map(([k]) => [k, state.get(k)])) }),
  render,
);
const selects = Object.fromEntries(FILTERS.map(([key, label]) => [key, filterSelect(key, label, { onChange: load })]));
form.append(...Object.values(selects));
timebar(form, load);  // the first load, once the range is known


function render(data) {
  const t = data.totals;
  for (const [key] of FILTERS) selects[key].setChoices(data.facets[`${key === 'service' ? 'services' : key + 's'}`]);
  clear($('#message'));
  if (t.requests === 0) {
    const filtered = FILTERS.some(([k]) => state.get(k));
    emptyState($('#message'), filtered ? 'No LLM calls match these filters in this time range.'
      : 'No LLM calls in this time range yet — point an OTel SDK at this server.', ...(filtered ? [] : otelHint()));
  }
  $('#dashboard').hidden = t.requests === 0;
  clear($('#tiles'),
    tile('request-rate', 'Request rate', f.rate(t.request_rate_per_s), t.request_rate_per_s,
      t.request_rate_per_s === null ? `${f.int(t.requests)} request${t.requests === 1 ? '' : 's'}`
        : `${f.int(t.requests)} requests over the ${f.ms(t.active_seconds * 1000)} with calls`),
    tile('cost', 'Total cost', cost(t.cost_usd, t.unpriced_requests, t.requests), t.cost_usd, `${f.int(t.unpriced_requests)} unpriced`, t.unpriced_requests ? 'warn' : ''),
    tile('successes', 'Successful', f.int(t.successes), t.successes),
    tile('errors', 'Failed', f.int(t.errors), t.errors, `${f.pct(t.error_rate)} error rate`, t.errors ? 'bad' : ''),
    tile('models', 'Models in use', f.int(t.models), t.models),
    tile('latency-p95', 'Latency p95', f.ms(t.latency_p95_ms), t.latency_p95_ms,
      `p50 ${f.ms(t.latency_p50_ms)} · p99 ${f.ms(t.latency_p99_ms)}`),
    tile('ttft-p50', 'Time to first token p50', f.ms(t.ttft_p50_ms), t.ttft_p50_ms, `p95 ${f.ms(t.ttft_p95_ms)}`),
    tile('output-tps', 'Output tokens/s', f.num(t.output_tokens_per_s, 1), t.output_tokens_per_s),
    tile('tokens', 'Tokens in / out', `${f.int(t.input_tokens)} / ${f.int(t.output_tokens)}`,
      t.input_tokens + t.output_tokens));
  if (t.requests === 0) return;
  renderModels(data.models);
  renderCharts(data);
  renderTables(data);
}

function renderModels(models) {
  clear($('#models'), models.map((m, i) => h('li', { 'data-model': m.model, 'data-requests': m.requests },
    h('span', { class: 'name', title: m.model }, m.model),
    h('span', { class: 'track', role: 'presentation' },
      h('span', { class: 'fill', style: { width: `${(m.share * 100).toFixed(1)}%`, background: PALETTE[i % PALETTE.length] } })),
    h('span', { class: 'num' }, `${f.pct(m.share)}`))));
}

function renderCharts(data) {
  const s = data.series;
  const b = s.map((r) => r.bucket);
  const col = (key) => s.map((r) => r[key]);
  const step = data.window.step_seconds;
  timeChart($('#chart-latency'), { title: 'Latency', buckets: b, fmt: f.ms, series: [
    { label: 'p50', values: col('latency_p50_ms') }, { label: 'p95', values: col('latency_p95_ms') },
    { label: 'p99', values: col('latency_p99_ms') }] });
  timeChart($('#chart-ttft'), { title: 'Time to first token', buckets: b, fmt: f.ms, series: [
    { label: 'p50', values: col('ttft_p50_ms') }, { label: 'p95', values: col('ttft_p95_ms') }] });
  timeChart($('#chart-tps'), { title: 'Output tokens per second', buckets: b, fmt: (v) => f.num(v, 0),
    series: [{ label: 'tokens/s', values: col('output_tokens_per_s') }] });
  timeChart($('#chart-volume'), { title: `Requests per ${step}s bucket`, buckets: b, fmt: f.int, bars: true, series: [
    { label: 'requests', values: col('requests') }, { label: 'errors', values: col('errors'), color: PALETTE[4] }] });
  timeChart($('#chart-tokens'), { title: 'Tokens in and out', buckets: b, fmt: f.int, series: [
    { label: 'input', values: col('input_tokens') }, { label: 'output', values: col('output_tokens') }] });
  timeChart($('#chart-tokens-cost'), { title: 'Tokens versus cost', buckets: b, fmt: f.int, fmt2: f.usd, series: [
    { label: 'tokens', values: s.map((r) => r.input_tokens + r.output_tokens) },
    { label: data.totals.unpriced_requests ? 'cost (priced calls only)' : 'cost', values: col('cost_usd'), scale: 'y2',
      fmt: f.usd, color: PALETTE[2] }] });
  timeChart($('#chart-errors'), { title: 'Error rate', buckets: b, fmt: (v) => f.pct(v, 0), series: [
    { label: 'error rate', values: col('error_rate'), color: PALETTE[4], fmt: (v) => f.pct(v) }] });
  const hist = data.duration_histogram;
  barChart($('#chart-histogram'), { title: 'Request duration distribution',
    labels: hist.map((x) => (x.upper_ms === null ? `≥${f.msShort(x.lower_ms)}` : `<${f.msShort(x.upper_ms)}`)),
    values: hist.map((x) => x.requests), fmt: f.int });
}

function renderTables(data) {
  if (!data.top_errors.length) clear($('#top-errors'), h('p', { class: 'muted' }, 'No failed requests in this range.'));
  else clear($('#top-errors'), table([
    { key: 'error_type', label: 'Error type', render: (r) => h('a', {
      href: `/traces?q=${encodeURIComponent(r.error_type === 'unknown' ? '{ status = error }' : `{ errorType = ${JSON.stringify(r.error_type)} }`)}` }, r.error_type) },
    { key: 'requests', label: 'Requests', num: true, render: (r) => f.int(r.requests) },
    { key: 'last_seen', label: 'Last seen', render: (r) => f.time(r.last_seen) },
  ], data.top_errors, { caption: 'Top error types', testid: 'top-errors-table' }));
  clear($('#cost-by'), table([
    { key: 'department', label: 'Department', render: (r) => r.department || h('span', { class: 'muted' }, '(none)') },
    { key: 'app', label: 'App', render: (r) => r.app || h('span', { class: 'muted' }, '(none)') },
    { key: 'requests', label: 'Requests', num: true, render: (r) => f.int(r.requests) },
    { key: 'tokens', label: 'Tokens', num: true, render: (r) => f.int(r.input_tokens + r.output_tokens) },
    { key: 'cost_usd', label: 'Cost', num: true, render: (r) => cost(r.cost_usd, r.unpriced_requests, r.requests) },
    { key: 'unpriced', label: 'Unpriced', num: true, render: (r) => f.int(r.unpriced_requests) },
  ], data.cost_by, { caption: 'Cost by department and app', testid: 'cost-by-table',
    rowAttrs: (r) => ({ 'data-cost': r.cost_usd, 'data-requests': r.requests }) }));
}

