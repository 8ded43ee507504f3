// One trace: summary, latency breakdown per step, waterfall, span details (LLM prompt/response), logs.
import { getJSON } from './lib/api.js';
import { PALETTE } from './lib/charts.js';
import { cost } from './lib/cost.js';
import { $, clear, emptyState, h, markReady, setBusy, showError } from './lib/dom.js';
import * as f from './lib/format.js';
import * as state from './lib/state.js';
import { showTraceScores, spanScores } from './lib/scores.js';
import { table } from './lib/table.js';
import { typicalButton } from './lib/typical.js';
import { breakdown, layout, profileHref } from './lib/tracetree.js';

// Model calls, as the overview counts them (retrieval, tool and agent steps have LLM facts too).
const MODEL_OPERATIONS = new Set(['chat', 'text_completion', 'generate_content', 'embeddings', 'responses', 'rerank']);
const traceId = $('#trace-root').dataset.traceId;
let spans = [];
let byId = new Map();
let scores = [];
// Services with profile samples around this trace: one request per trace view, so that "Profile of
// this span" shows only where there is a profile to open.
let profiled = { services: new Set(), error: null };

async function load() {
  setBusy(true);
  try {
    const trace = await getJSON(`/api/v1/traces/${encodeURIComponent(traceId)}`);
    spans = layout(trace.spans);
    byId = new Map(spans.map((s) => [s.span_id, s]));
    renderSummary();
    scores = trace.scores || [];
    showTraceScores($('#summary'), scores, byId, select);
    typicalButton($('[data-back]').parentElement, spans[0], traceId, $('#message'));
    renderBreakdown();
    renderWaterfall();
    profiled = await profiledServices(spans);
    select(state.get('span') && byId.has(state.get('span')) ? state.get('span') : spans[0]?.span_id, false);
    await loadLogs();
    markReady();
  } catch (error) {
    showError($('#message'), error);
    markReady('error');
  } finally {
    setBusy(false);
  }
}

async function profiledServices(traceSpans) {
  if (!traceSpans.length) return { services: new Set(), error: null };
  const starts = traceSpans.map((s) => Date.parse(s.start_time));
  const ends = traceSpans.map((s) => Date.parse(s.start_time) + s.duration_ms);
  // The padding profileHref gives a span's flame graph: samples are pushed in ~10 s batches.
  const range = { start: new Date(Math.min(...starts) - 60e3).toISOString(), end: new Date(Math.max(...ends) + 60e3).toISOString() };
  try {
    const { services } = await getJSON('/api/v1/profiles/services', range);
    return { services: new Set(services.filter((s) => s.value > 0).map((s) => s.service)), error: null };
  } catch (error) {
    return { services: new Set(), error };
  }
}

function profileLink(span) {
  if (profiled.error) return h('span', { class: 'muted', 'data-testid': 'span-profile-error' }, `unknown: ${profiled.error.message}`);
  if (!profiled.services.has(span.service)) return undefined; // the row is left out
  return h('a', { href: profileHref(span, traceId), 'data-testid': 'span-profile' }, 'Profile of this span');
}

function tile(id, label, value, raw, sub = '') {
  return h('div', { class: 'tile', 'data-testid': `tile-${id}`, 'data-value': raw ?? '' },
    h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'sub' }, sub));
}

function renderSummary() {
  const root = spans[0];
  const llm = spans.filter((s) => s.llm && MODEL_OPERATIONS.has(s.llm.operation));
  const sum = (key) => llm.reduce((acc, s) => acc + (s.llm[key] || 0), 0);
  const priced = llm.filter((s) => s.llm.priced);
  const pricedCost = priced.reduce((acc, s) => acc + s.llm.cost_usd, 0);
  const ttft = llm.map((s) => s.llm.ttft_ms).filter((v) => v !== null && v !== undefined);
  const errors = spans.filter((s) => s.status === 'error').length;
  const services = [...new Set(spans.map((s) => s.service))];
  document.title = `${root.name} · trace · llmlens`;
  // The first span has a parent that is not stored: the root is still on its way (or was lost).
  $('#page-title').textContent = `Trace: ${root.service} · ${root.name}${root.parent_span_id ? ' (root span not received yet)' : ''}`;
  clear($('#summary'),
    tile('duration', 'Duration', f.ms(spans.totalMs), spans.totalMs, f.time(root.start_time)),
    tile('spans', 'Spans', f.int(spans.length), spans.length, `${services.length} service${services.length === 1 ? '' : 's'}: ${services.join(', ')}`),
    tile('errors', 'Errors', f.int(errors), errors),
    tile('llm-calls', 'LLM calls', f.int(llm.length), llm.length),
    tile('tokens', 'Tokens in / out', `${f.int(sum('input_tokens'))} / ${f.int(sum('output_tokens'))}`, sum('input_tokens') + sum('output_tokens')),
    tile('cost', 'Cost', cost(pricedCost, llm.length - priced.length, llm.length), pricedCost,
      llm.length > priced.length ? `${llm.length - priced.length} of ${llm.length} calls unpriced` : ''),
    tile('ttft', 'First token', ttft.length ? f.ms(ttft[0]) : f.dash, ttft.length ? ttft[0] : null));
}

function renderBreakdown() {
  const steps = breakdown(spans);
  const color = (i) => PALETTE[i % PALETTE.length];
  clear($('#breakdown'),
    h('div', { class: 'stack', role: 'img', 'aria-label': steps.map((s) => `${s.step} ${f.pct(s.share)}`).join(', ') },
      steps.map((s, i) => h('span', { style: { width: `${(s.share * 100).toFixed(2)}%`, background: color(i) }, title: `${s.step}: ${f.pct(s.share)}` }))),
    table([
      { key: 'step', label: 'Step', render: (r) => [h('span', { class: 'swatch', style: { background: color(steps.indexOf(r)) } }), r.step] },
      { key: 'spans', label: 'Spans', num: true, render: (r) => f.int(r.spans) },
      { key: 'self_ms', label: 'Own time', num: true, render: (r) => f.ms(r.self_ms) },
      { key: 'share', label: 'Share of trace', num: true, render: (r) => f.pct(r.share) },
    ], steps, { caption: 'Time spent per step (each instant counted once)', testid: 'breakdown-table',
      rowAttrs: (r) => ({ 'data-step': r.step, 'data-self-ms': r.self_ms }) }));
}

function renderWaterfall() {
  const services = [...new Set(spans.map((s) => s.service))];
  const colorOf = (svc) => PALETTE[services.indexOf(svc) % PALETTE.length];
  const list = h('ul');
  for (const span of spans) {
    const left = (span.offsetMs / spans.totalMs) * 100 || 0;
    const width = Math.max((span.duration_ms / spans.totalMs) * 100, 0.3) || 0.3;
    list.append(h('li', {}, h('button', {
      type: 'button', class: 'row', 'data-span-id': span.span_id, 'aria-pressed': 'false',
      'aria-label': `${span.service} ${span.name}, ${f.ms(span.duration_ms)}${span.status === 'error' ? ', error' : ''}`,
      onclick: () => select(span.span_id), onkeydown: moveFocus },
    h('span', { class: 'label', style: { paddingLeft: `${span.depth * 14}px` } },
      h('span', { class: 'svc', style: { background: colorOf(span.service) } }),
      span.llm ? h('strong', {}, span.name) : span.name,
      h('span', { class: 'muted' }, ` · ${span.service}`)),
    h('span', { class: 'lane' },
      h('span', { class: `bar${span.status === 'error' ? ' error' : ''}`, style: { left: `${left}%`, width: `${width}%`, background: colorOf(span.service) } })),
    h('span', { class: 'dur' }, f.ms(span.duration_ms)))));
  }
  clear($('#waterfall'), list);
}

function moveFocus(event) {
  if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp') return;
  event.preventDefault();
  const rows = [...document.querySelectorAll('#waterfall .row')];
  const next = rows[rows.indexOf(event.currentTarget) + (event.key === 'ArrowDown' ? 1 : -1)];
  next?.focus();
}

function select(spanId, push = true) {
  const span = byId.get(spanId);
  if (!span) return;
  for (const row of document.querySelectorAll('#waterfall .row')) row.setAttribute('aria-pressed', String(row.dataset.spanId === spanId));
  if (push) state.update({ span: spanId }, { replace: true });
  renderDetails(span);
}

function kv(object, caption) {
  const entries = Object.entries(object || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h('p', { class: 'muted' }, `No ${caption.toLowerCase()}.`);
  return h('table', { class: 'kv' }, h('caption', { class: 'visually-hidden' }, caption),
    h('tbody', {}, entries.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, typeof v === 'string' ? v : JSON.stringify(v))))));
}

function dl(pairs) {
  return h('dl', {}, pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? f.dash)]));
}

function renderDetails(span) {
  const llm = span.llm;
  clear($('#details'),
    h('h3', { class: 'span-title' }, span.name),
    dl([['Service', span.service], ['Kind', span.kind], ['Status', h('span', { class: `badge ${span.status === 'error' ? 'error' : 'ok'}` }, span.status)],
      ['Status message', span.status_message], ['Start', f.time(span.start_time)], ['Duration', f.ms(span.duration_ms)],
      ['Span id', h('span', { class: 'mono' }, span.span_id)], ['Parent', span.parent_span_id ? h('span', { class: 'mono' }, span.parent_span_id) : f.dash],
      ['CPU profile', profileLink(span)]]),
    llm ? [h('h3', {}, 'LLM call'),
      h('div', { 'data-testid': 'llm-details' }, dl([
        ['Operation', llm.operation], ['Provider', llm.provider_raw ? `${llm.provider || f.dash} (as sent: ${llm.provider_raw})` : llm.provider],
        ['Model', `${llm.request_model || f.dash}${llm.response_model && llm.response_model !== llm.request_model ? ` → ${llm.response_model}` : ''}`],
        ['Tokens in / out', `${f.int(llm.input_tokens)} / ${f.int(llm.output_tokens)}${llm.tokens_estimated ? ' (estimated by the instrumentor)' : ''}`],
        ['Cached / reasoning', `${f.int(llm.cached_input_tokens)} / ${f.int(llm.reasoning_tokens)}`],
        ['Cost', llm.priced ? `${f.usd(llm.cost_usd)}${llm.cost_estimated ? ' (estimated)' : ''}` : h('span', { class: 'badge warn' }, 'unpriced')],
        ['Tool calls', (llm.tool_calls || []).map((c) => `${c.name}(${c.arguments || ''})`).join(', ') || f.dash],
        ['Time to first token', llm.ttft_ms === null || llm.ttft_ms === undefined ? f.dash : f.ms(llm.ttft_ms)],
        ['Streaming', llm.streaming === null || llm.streaming === undefined ? f.dash : String(llm.streaming)],
        ['Finish reasons', (llm.finish_reasons || []).join(', ') || f.dash], ['Error type', llm.error_type],
        ['Session', llm.session_id ? h('a', { href: `/sessions/${encodeURIComponent(llm.session_id)}` }, llm.session_id) : f.dash],
        ['User', llm.user_id], ['App / department', `${llm.app || f.dash} / ${llm.department || f.dash}`],
        ['Inherited from the trace', (llm.inherited || []).join(', ') || undefined]])),
      h('h4', {}, 'Prompt'), h('pre', { 'data-testid': 'llm-input' }, llm.input || '(not captured)'),
      h('h4', {}, 'Response'), h('pre', { 'data-testid': 'llm-output' }, llm.output || '(not captured)')] : null,
    spanScores(scores, span.span_id),
    h('h3', {}, 'Attributes'), kv(span.attributes, 'Span attributes'),
    h('h3', {}, 'Resource'), kv(span.resource, 'Resource attributes'),
    h('h3', {}, `Events (${span.events.length})`),
    span.events.length ? h('ul', {}, span.events.map((e) => h('li', {}, h('strong', {}, e.name), ` at ${f.time(e.time)}`, kv(e.attributes, 'Event attributes')))) : h('p', { class: 'muted' }, 'No events.'),
    span.links.length ? [h('h3', {}, 'Links'), h('ul', {}, span.links.map((l) => h('li', {},
      h('a', { href: `/traces/${l.trace_id}` }, `${f.shortId(l.trace_id)} / ${l.span_id}`))))] : null);
}

async function loadLogs() {
  const start = new Date(Date.parse(spans[0].start_time) - 3600e3).toISOString();
  const end = new Date(Date.parse(spans[0].start_time) + spans.totalMs + 3600e3).toISOString();
  const link = h('a', { href: `/logs?trace_id=${traceId}&range=custom&start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`,
    'data-testid': 'open-logs' }, 'Open these logs in Logs');
  try {
    const data = await getJSON('/api/v1/logs', { trace_id: traceId, start, end, limit: 500 });
    if (!data.items.length) {
      emptyState($('#logs'), 'No logs carry this trace id.', h('p', {}, 'Logs emitted inside a span get its trace id when the app uses an OTel log handler (llmlens.init() installs one).'));
      return;
    }
    const items = [...data.items].sort((a, b) => a.time.localeCompare(b.time));
    clear($('#logs'), h('p', {}, link), table([
      { key: 'time', label: 'Time', render: (r) => f.time(r.time) },
      { key: 'severity', label: 'Severity', render: (r) => h('span', { class: `sev-${(r.severity || '').toUpperCase()}` }, r.severity || (r.severity_number ? String(r.severity_number) : r.event_name || f.dash)) },
      { key: 'service', label: 'Service' },
      { key: 'body', label: 'Message', render: (r) => h('span', { class: 'mono' }, r.body) },
      { key: 'span_id', label: 'Span', render: (r) => (r.span_id && byId.has(r.span_id)
        ? h('button', { type: 'button', class: 'link', onclick: () => { select(r.span_id); document.querySelector(`#waterfall [data-span-id="${r.span_id}"]`)?.focus(); } }, byId.get(r.span_id).name)
        : (r.span_id || f.dash)) },
    ], items, { caption: 'Logs of this trace', testid: 'trace-logs-table' }));
  } catch (error) {
    showError($('#logs'), error);
  }
}

load();
