// Two traces side by side (GET /api/v1/traces/compare): totals, the aligned span trees with their
// differences (B minus A), and an LLM call pair's model, parameters, prompt and response diff.
import { getJSON } from './lib/api.js';
import { $, clear, emptyState, h, markReady, setBusy, showError } from './lib/dom.js';
import * as f from './lib/format.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';

const form = $('#compare-form');
const inputA = $('#trace-a');
const inputB = $('#trace-b');
let result = null;

inputA.value = state.get('a');
inputB.value = state.get('b');
form.addEventListener('submit', (event) => {
  event.preventDefault();
  state.update({ a: inputA.value.trim() || null, b: inputB.value.trim() || null, row: null });
  load();
});
$('#swap').addEventListener('click', () => {
  [inputA.value, inputB.value] = [inputB.value, inputA.value];
  state.update({ a: inputA.value.trim() || null, b: inputB.value.trim() || null, row: null });
  load();
});
window.addEventListener('popstate', () => { inputA.value = state.get('a'); inputB.value = state.get('b'); load(); });

function show(panels) {
  for (const id of ['totals-panel', 'aligned-panel', 'pair-panel']) $(`#${id}`).hidden = !panels.includes(id);
}

async function load() {
  const a = state.get('a');
  const b = state.get('b');
  clear($('#message'));
  if (!a || !b) {
    show([]);
    emptyState($('#message'), 'Pick two traces to compare.',
      h('p', {}, 'In ', h('a', { href: '/traces' }, 'Traces'), ', tick two traces and choose “Compare selected”; ',
        'or open a trace and choose “Compare with a typical trace”; or paste two trace ids above.'));
    markReady();
    return;
  }
  setBusy(true);
  try {
    result = await getJSON('/api/v1/traces/compare', { a, b });
    document.title = `Compare ${f.shortId(a, 8)} · ${f.shortId(b, 8)} · llmlens`;
    $('#page-title').textContent = `Compare: ${result.a.root_service} · ${result.a.root_name}` +
      (result.b.root_name !== result.a.root_name || result.b.root_service !== result.a.root_service
        ? ` with ${result.b.root_service} · ${result.b.root_name}` : '');
    renderTotals();
    renderRows();
    show(['totals-panel', 'aligned-panel']);
    const row = Number(state.get('row', '-1'));
    if (result.rows[row]?.llm) selectRow(row, false); else $('#pair-panel').hidden = true;
    markReady();
  } catch (error) {
    show([]);
    showError($('#message'), error);
    markReady('error');
  } finally {
    setBusy(false);
  }
}

/** A signed difference: "+12 ms" / "−3 ms"; more time, tokens or cost reads as worse. */
function delta(value, fmt, { lowerIsBetter = true } = {}) {
  if (value === null || value === undefined) return f.dash;
  if (value === 0) return h('span', { class: 'delta same', 'data-delta': 0 }, '±0');
  const worse = lowerIsBetter ? value > 0 : value < 0;
  return h('span', { class: `delta ${worse ? 'worse' : 'better'}`, 'data-delta': value },
    `${value > 0 ? '+' : '−'}${fmt(Math.abs(value))}`);
}

function traceLink(side) {
  const t = result[side];
  return h('a', { href: `/traces/${t.trace_id}`, 'data-testid': `trace-${side}` }, f.shortId(t.trace_id, 16));
}

function renderTotals() {
  const { a, b, difference: d } = result;
  const costOf = (t) => (t.unpriced_calls && t.unpriced_calls >= t.llm_calls ? 'unpriced'
    : `${f.usd(t.cost_usd)}${t.unpriced_calls ? ` + ${t.unpriced_calls} unpriced` : ''}`);
  const lines = [
    ['trace', 'Trace', traceLink('a'), traceLink('b'), ''],
    ['start', 'Start', f.time(a.start_time), f.time(b.start_time), ''],
    ['duration', 'Duration', f.ms(a.duration_ms), f.ms(b.duration_ms), delta(d.duration_ms, f.ms)],
    ['spans', 'Spans', f.int(a.span_count), f.int(b.span_count), delta(d.span_count, f.int, { lowerIsBetter: false })],
    ['errors', 'Errors', f.int(a.error_count), f.int(b.error_count), delta(d.error_count, f.int)],
    ['llm-calls', 'LLM calls', f.int(a.llm_calls), f.int(b.llm_calls), delta(d.llm_calls, f.int)],
    ['input-tokens', 'Input tokens', f.int(a.input_tokens), f.int(b.input_tokens), delta(d.input_tokens, f.int)],
    ['output-tokens', 'Output tokens', f.int(a.output_tokens), f.int(b.output_tokens), delta(d.output_tokens, f.int)],
    ['cost', 'Cost', costOf(a), costOf(b), delta(d.cost_usd, f.usd)],
  ];
  clear($('#totals'), table([
    { key: 'label', label: '', render: (r) => h('strong', {}, r[1]) },
    { key: 'a', label: 'A', num: true, render: (r) => r[2] },
    { key: 'b', label: 'B', num: true, render: (r) => r[3] },
    { key: 'difference', label: 'Difference (B − A)', num: true, render: (r) => r[4] },
  ], lines, { caption: 'The two traces in totals', testid: 'totals-table', rowAttrs: (r) => ({ 'data-total': r[0] }) }));
}

const MATCH = { both: null, only_a: 'only in A', only_b: 'only in B' };

function tokens(side) {
  return side && side.input_tokens !== null ? `${f.int(side.input_tokens)} / ${f.int(side.output_tokens)}` : f.dash;
}

function renderRows() {
  const { counts } = result;
  $('#align-counts').textContent = `${counts.matched} matched · ${counts.only_a} only in A · ${counts.only_b} only in B`;
  const rows = result.rows.map((r, index) => ({ ...r, index }));
  const d = (r, key) => (r.difference ? r.difference[key] : null);
  clear($('#aligned'), table([
    { key: 'span', label: 'Span', render: (r) => h('span', { class: 'indent', style: { paddingLeft: `${r.depth * 14}px` } },
      r.llm ? h('button', { type: 'button', class: 'link', 'data-select-row': r.index, onclick: () => selectRow(r.index) }, r.name)
        : r.name,
      r.name_b ? h('span', { class: 'muted' }, ` / B: ${r.name_b}`) : null,
      r.occurrence ? h('span', { class: 'muted' }, ` #${r.occurrence + 1}`) : null,
      h('span', { class: 'muted' }, ` · ${r.service}`),
      MATCH[r.match] ? [' ', h('span', { class: `badge ${r.match === 'only_a' ? 'warn' : 'only-b'}` }, MATCH[r.match])] : null,
      [r.a, r.b].some((s) => s && s.status === 'error') ? [' ', h('span', { class: 'badge error' },
        r.a?.status === 'error' && r.b?.status === 'error' ? 'error in both' : r.a?.status === 'error' ? 'error in A' : 'error in B')] : null) },
    { key: 'duration_a', label: 'Duration A', num: true, render: (r) => (r.a ? f.ms(r.a.duration_ms) : f.dash) },
    { key: 'duration_b', label: 'Duration B', num: true, render: (r) => (r.b ? f.ms(r.b.duration_ms) : f.dash) },
    { key: 'duration_delta', label: 'Δ duration', num: true, render: (r) => delta(d(r, 'duration_ms'), f.ms) },
    { key: 'tokens_a', label: 'Tokens A in / out', num: true, render: (r) => tokens(r.a) },
    { key: 'tokens_b', label: 'Tokens B in / out', num: true, render: (r) => tokens(r.b) },
    { key: 'tokens_delta', label: 'Δ tokens', num: true, render: (r) => (d(r, 'input_tokens') === null ? f.dash
      : delta(d(r, 'input_tokens') + d(r, 'output_tokens'), f.int)) },
    { key: 'cost_a', label: 'Cost A', num: true, render: (r) => (r.a && r.a.llm ? (r.a.llm.priced ? f.usd(r.a.cost_usd) : 'unpriced') : f.dash) },
    { key: 'cost_b', label: 'Cost B', num: true, render: (r) => (r.b && r.b.llm ? (r.b.llm.priced ? f.usd(r.b.cost_usd) : 'unpriced') : f.dash) },
    { key: 'cost_delta', label: 'Δ cost', num: true, render: (r) => delta(d(r, 'cost_usd'), f.usd) },
  ], rows, { caption: 'Aligned spans of the two traces', testid: 'aligned-table',
    rowAttrs: (r) => ({ 'data-match': r.match, 'data-name': r.name, 'data-service': r.service, 'data-row': r.index,
      class: r.match === 'both' ? null : `row-${r.match.replace('_', '-')}` }) }));
}

function diffBlock(diff, testid, textA, textB) {
  if (diff.same) return h('p', { class: 'muted', 'data-testid': testid, 'data-same': 'true' }, textA ? 'The same in both.' : 'Not captured in either.');
  return [
    h('pre', { class: 'diff', 'data-testid': testid, 'data-same': 'false', 'aria-label': 'Line differences, A to B' },
      diff.lines.map((line) => h('span', { class: line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : line.startsWith('@@') ? 'hunk' : 'ctx' },
        `${line}\n`))),
    diff.truncated ? h('p', { class: 'muted' }, 'The diff is cut short; open the traces to read the texts in full.') : null,
    h('details', {}, h('summary', {}, 'Both texts in full'),
      h('div', { class: 'grid two' }, h('pre', { 'data-testid': `${testid}-a` }, textA || '(not captured)'),
        h('pre', { 'data-testid': `${testid}-b` }, textB || '(not captured)'))),
  ];
}

function selectRow(index, push = true) {
  const r = result.rows[index];
  if (!r || !r.llm) return;
  if (push) state.update({ row: index }, { replace: true });
  for (const tr of document.querySelectorAll('[data-testid="aligned-table"] tbody tr')) {
    tr.setAttribute('aria-selected', String(Number(tr.dataset.row) === index));
  }
  const A = r.a.llm || {};
  const B = r.b.llm || {};
  const changed = new Set(r.llm.parameters_changed.map((p) => p.name));
  const names = [...new Set([...Object.keys(A.parameters || {}), ...Object.keys(B.parameters || {})])].sort();
  const model = (x) => `${x.request_model || f.dash}${x.response_model && x.response_model !== x.request_model ? ` → ${x.response_model}` : ''}`;
  const facts = [
    ['Model', model(A), model(B), r.llm.model_changed],
    ['Operation', A.operation, B.operation], ['Provider', A.provider, B.provider],
    ['Status', r.a.status, r.b.status], ['Error type', A.error_type, B.error_type],
    ['Duration', f.ms(r.a.duration_ms), f.ms(r.b.duration_ms)],
    ['Time to first token', A.ttft_ms === null ? null : f.ms(A.ttft_ms), B.ttft_ms === null ? null : f.ms(B.ttft_ms)],
    ['Tokens in / out', tokens(r.a), tokens(r.b)],
    ['Cost', A.priced ? f.usd(r.a.cost_usd) : 'unpriced', B.priced ? f.usd(r.b.cost_usd) : 'unpriced'],
    ['Finish reasons', (A.finish_reasons || []).join(', '), (B.finish_reasons || []).join(', ')],
    ...names.map((name) => [name, A.parameters?.[name], B.parameters?.[name], changed.has(name), 'parameter']),
  ];
  $('#pair-panel').hidden = false;
  clear($('#pair'),
    h('h3', { class: 'span-title' }, `${r.name} · ${r.service}`),
    table([
      { key: 'fact', label: '', render: (x) => (x[4] ? h('span', { class: 'mono' }, x[0]) : h('strong', {}, x[0])) },
      { key: 'a', label: 'A', render: (x) => x[1] ?? f.dash },
      { key: 'b', label: 'B', render: (x) => x[2] ?? f.dash },
      { key: 'changed', label: '', render: (x) => (x[3] ? h('span', { class: 'badge warn' }, 'changed') : '') },
    ], facts, { caption: 'The two LLM calls', testid: 'pair-table',
      rowAttrs: (x) => ({ 'data-fact': x[0], 'data-changed': x[3] ? 'true' : 'false' }) }),
    h('h4', {}, 'Prompt'), diffBlock(r.llm.input_diff, 'input-diff', A.input, B.input),
    h('h4', {}, 'Response'), diffBlock(r.llm.output_diff, 'output-diff', A.output, B.output));
  if (push) $('#pair-panel').focus();
}

load();
