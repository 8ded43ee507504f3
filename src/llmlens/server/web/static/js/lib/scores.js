// Quality scores in the trace view: the trace's scores in a panel under the summary, and each span's
// own scores in its details (a score belongs to the span it was recorded on, or to the whole trace).
import { $, clear, h } from './dom.js';
import * as f from './format.js';
import { table } from './table.js';

function value(score) {
  return h('span', { class: 'score-value', 'data-value': score.value }, f.num(score.value, 3),
    score.label ? h('span', { class: 'muted' }, ` (${score.label})`) : null);
}

/**
 * Shows `scores` (GET /api/v1/traces/{id}'s `scores`) in a panel after `anchor`; a score on a span of
 * the trace links to it through `select(spanId)`.
 */
export function showTraceScores(anchor, scores, spansById, select) {
  let panel = $('#scores-panel');
  if (!panel) {
    panel = h('section', { class: 'panel spaced', id: 'scores-panel', 'aria-labelledby': 'h-scores' });
    anchor.after(panel);
  }
  if (!scores.length) {
    clear(panel, h('h2', { id: 'h-scores' }, 'Quality scores'),
      h('p', { class: 'muted', 'data-testid': 'no-scores' }, 'No scores for this trace. Record one with ',
        h('code', {}, 'llmlens.score("name", value)'), ' inside the trace, or from an evaluator with its trace id.'));
    return;
  }
  clear(panel, h('h2', { id: 'h-scores' }, `Quality scores (${scores.length})`), table([
    { key: 'name', label: 'Score', render: (s) => h('a', { href: `/quality?name=${encodeURIComponent(s.name)}` }, s.name) },
    { key: 'value', label: 'Value', num: true, render: value },
    { key: 'span', label: 'On', render: (s) => (s.span_id && spansById.has(s.span_id)
      ? h('button', { type: 'button', class: 'link', 'data-score-span': s.span_id, onclick: () => select(s.span_id) },
        spansById.get(s.span_id).name)
      : 'the whole trace') },
    { key: 'comment', label: 'Comment', render: (s) => s.comment || f.dash },
    { key: 'source', label: 'Source', render: (s) => `${s.source}${s.service ? ` · ${s.service}` : ''}` },
    { key: 'time', label: 'Recorded', render: (s) => f.time(s.time) },
  ], scores, { caption: 'Quality scores of this trace', testid: 'trace-scores-table',
    rowAttrs: (s) => ({ 'data-score': s.name }) }));
}

/** The scores recorded on one span, for its details panel (nothing when it has none). */
export function spanScores(scores, spanId) {
  const own = scores.filter((s) => s.span_id === spanId);
  if (!own.length) return null;
  return [h('h3', {}, `Scores (${own.length})`), h('ul', { 'data-testid': 'span-scores' }, own.map((s) =>
    h('li', { 'data-score': s.name }, h('strong', {}, s.name), ': ', value(s), s.comment ? h('span', { class: 'muted' }, ` — ${s.comment}`) : null)))];
}
