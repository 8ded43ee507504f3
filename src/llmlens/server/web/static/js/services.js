// Services: the service graph (GET /api/v1/service-graph) and RED by operation (GET /api/v1/red).
// A click on a node, an edge or an operation opens the traces behind it, its filters in the URL.
import { getJSON } from './lib/api.js';
import { $, clear, emptyState, h, otelHint } from './lib/dom.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import { drawGraph, errorLevel, legend } from './lib/servicegraph.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { filterSelect, timebar } from './lib/timebar.js';

const KINDS = [['server,client', 'Server and client spans'], ['server', 'Server spans'], ['client', 'Client spans'],
  ['internal', 'Internal spans'], ['all', 'All spans']];
const DEFAULT_KIND = KINDS[0][0];
const form = $('#filters');
form.addEventListener('submit', (event) => event.preventDefault());  // filters apply on change

const load = latestOnly(async () => {
  const time = state.timeParams();
  const service = state.get('service');
  const kind = state.get('kind', DEFAULT_KIND);
  const [graph, red] = await Promise.all([
    getJSON('/api/v1/service-graph', { ...time, service }),
    getJSON('/api/v1/red', { ...time, service, kind: kind === 'all' ? null : kind, limit: 200 }),
  ]);
  return { graph, red };
}, render);

const serviceFilter = filterSelect('service', 'Service', { onChange: load, allLabel: 'All services' });
const kindSelect = h('select', { id: 'f-kind', name: 'kind' }, KINDS.map(([v, l]) => h('option', { value: v }, l)));
kindSelect.value = state.get('kind', DEFAULT_KIND);
kindSelect.addEventListener('change', () => { state.update({ kind: kindSelect.value === DEFAULT_KIND ? null : kindSelect.value }); load(); });
$('#red-kind').append(h('label', { for: 'f-kind' }, 'Operations of', kindSelect));
form.append(serviceFilter);
timebar(form, load);  // the first load, once the range is known
window.addEventListener('popstate', () => { kindSelect.value = state.get('kind', DEFAULT_KIND); });
legend($('#legend'));

/** The traces page with these parameters and this page's time range. */
function tracesHref(params) {
  const p = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) p.set(key, value);
  const current = state.params();
  for (const key of ['range', 'start', 'end']) if (current.get(key)) p.set(key, current.get(key));
  return `/traces?${p}`;
}

function graphHref(kind, item) {
  if (kind === 'node' && item.kind === 'service') return tracesHref({ service: item.id });
  return tracesHref({ q: item.traces_query });
}

function render({ graph, red }) {
  const services = graph.nodes.filter((n) => n.kind === 'service').map((n) => n.id);
  serviceFilter.setChoices(services);
  clear($('#message'));
  const service = state.get('service');
  const empty = graph.nodes.length === 0;
  $('#content').hidden = empty;
  if (empty) {
    if (service) emptyState($('#message'), `No spans of ${service} in this time range.`);
    else emptyState($('#message'), 'No spans in this time range yet — point an OTel SDK at this server.', ...otelHint());
    clear($('#graph'));
    clear($('#red'));
    return;
  }
  const calls = graph.edges.reduce((sum, e) => sum + e.requests, 0);
  $('#graph-summary').textContent = [[services.length, 'service'], [graph.nodes.length - services.length, 'other node'],
    [graph.edges.length, 'edge'], [calls, 'call']].map(([n, noun]) => `${f.int(n)} ${noun}${n === 1 ? '' : 's'}`).join(' · ');
  if (graph.edges.length) {
    drawGraph($('#graph'), graph, graphHref);
  } else {
    clear($('#graph'), h('p', { class: 'muted', 'data-testid': 'no-edges' },
      'No calls between services in this time range: the spans here have no client span answered by another ' +
      'service, and no call to a peer that sent nothing (an LLM provider, a database).'));
  }
  clear($('#edges'), table([
    { key: 'client', label: 'Client', render: (e) => e.client },
    { key: 'server', label: 'Server', render: (e) => h('a', { href: graphHref('edge', e) }, e.server) },
    { key: 'requests', label: 'Requests', num: true, render: (e) => f.int(e.requests) },
    { key: 'error_rate', label: 'Error rate', num: true, render: (e) => errorBadge(e.error_rate) },
    { key: 'p50_ms', label: 'p50', num: true, render: (e) => f.ms(e.p50_ms) },
    { key: 'p95_ms', label: 'p95', num: true, render: (e) => f.ms(e.p95_ms) },
  ], graph.edges, { caption: 'Edges of the service graph', testid: 'edges-table' }));
  renderRed(red);
}

/** Requests per second, minute or hour, whichever shows a figure (a day's window is often < 0.01/min). */
function rate(perSecond) {
  return perSecond > 0 && perSecond * 60 < 0.01 ? `${f.num(perSecond * 3600, 2)}/h` : f.rate(perSecond);
}

function errorBadge(rate) {
  const level = errorLevel(rate);
  return level === 'ok' && rate === 0 ? f.pct(rate) : h('span', { class: `badge ${level === 'bad' ? 'error' : level}` }, f.pct(rate));
}

function renderRed(red) {
  if (!red.rows.length) {
    clear($('#red'), h('p', { class: 'muted', 'data-testid': 'red-empty' }, 'No spans of this kind in this time range.'));
    return;
  }
  clear($('#red'), table([
    { key: 'service', label: 'Service', render: (r) => h('a', { href: tracesHref({ service: r.service }) }, r.service) },
    { key: 'span_name', label: 'Operation', render: (r) => h('a', { href: tracesHref({ service: r.service, name: r.span_name }) }, r.span_name) },
    { key: 'span_kind', label: 'Kind', render: (r) => r.span_kind },
    { key: 'rate', label: 'Rate', num: true, render: (r) => rate(r.rate) },
    { key: 'requests', label: 'Requests', num: true, render: (r) => f.int(r.requests) },
    { key: 'error_rate', label: 'Error rate', num: true, render: (r) => errorBadge(r.error_rate) },
    { key: 'p50_ms', label: 'p50', num: true, render: (r) => f.ms(r.p50_ms) },
    { key: 'p90_ms', label: 'p90', num: true, render: (r) => f.ms(r.p90_ms) },
    { key: 'p99_ms', label: 'p99', num: true, render: (r) => f.ms(r.p99_ms) },
  ], red.rows, { caption: 'Rate, errors and duration by service and operation', testid: 'red-table',
    rowAttrs: (r) => ({ 'data-service': r.service, 'data-span-name': r.span_name, 'data-kind': r.span_kind,
      'data-requests': r.requests, 'data-errors': r.errors }) }),
  red.truncated ? h('p', { class: 'muted' }, `The ${f.int(red.rows.length)} busiest operations; choose a service to see the rest.`) : null);
}

