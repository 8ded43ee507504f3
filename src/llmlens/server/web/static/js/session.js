// One session: its turns (traces) in order, each with prompt/response previews.
import { getJSON } from './lib/api.js';
import { cost, costText } from './lib/cost.js';
import { $, clear, h, markReady, setBusy, showError } from './lib/dom.js';
import * as f from './lib/format.js';

const sessionId = $('#session-root').dataset.sessionId;

function tile(id, label, value, raw) {
  return h('div', { class: 'tile', 'data-testid': `tile-${id}`, 'data-value': raw ?? '' },
    h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

async function load() {
  setBusy(true);
  try {
    const s = await getJSON(`/api/v1/sessions/${encodeURIComponent(sessionId)}`);
    $('#page-title').textContent = `Session ${s.session_id}`;
    document.title = `Session ${s.session_id} · llmlens`;
    clear($('#summary'),
      tile('turns', 'Turns', f.int(s.turns), s.turns),
      tile('started', 'Started', f.time(s.start_time), s.start_time),
      tile('llm-calls', 'LLM calls', f.int(s.llm_calls), s.llm_calls),
      tile('tokens', 'Tokens in / out', `${f.int(s.input_tokens)} / ${f.int(s.output_tokens)}`, s.input_tokens + s.output_tokens),
      tile('cost', 'Cost', cost(s.cost_usd, s.unpriced_requests, s.llm_calls), s.cost_usd),
      tile('errors', 'Turns with errors', f.int(s.errors), s.errors),
      tile('users', 'Users', s.users.join(', ') || f.dash, s.users.join(',')));
    clear($('#turns'), s.traces.map((t) => h('li', { class: `turn${t.error ? ' error' : ''}`, 'data-trace-id': t.trace_id },
      h('div', { class: 'toolbar' },
        h('a', { href: `/traces/${t.trace_id}`, 'data-trace-link': t.trace_id }, `Turn ${t.turn}: ${t.root_name || f.shortId(t.trace_id)}`),
        h('span', { class: 'muted' }, `${f.time(t.start_time)} · ${f.ms(t.duration_ms)} · ${f.int(t.input_tokens)} / ${f.int(t.output_tokens)} tokens · ${costText(t.cost_usd, t.unpriced_requests, t.llm_calls)}`,
          t.error ? [' · ', h('span', { class: 'badge error' }, 'error')] : null)),
      t.input_preview ? [h('div', { class: 'muted' }, 'Prompt'), h('pre', {}, t.input_preview)] : null,
      t.output_preview ? [h('div', { class: 'muted' }, 'Response'), h('pre', {}, t.output_preview)] : null)));
    markReady();
  } catch (error) {
    showError($('#message'), error);
    markReady('error');
  } finally {
    setBusy(false);
  }
}

load();
