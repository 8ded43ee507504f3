// The overview's quality panel: each score name of the range with its count and mean, linked to the
// quality view (GET /api/v1/quality). Loaded beside overview.js; it marks its own panel when done.
import { getJSON } from './lib/api.js';
import { $, clear, h } from './lib/dom.js';
import * as f from './lib/format.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';

const panel = $('#quality-summary');

async function load() {
  try {
    const data = await getJSON('/api/v1/quality', state.timeParams());
    const range = state.get('range') ? `&range=${encodeURIComponent(state.get('range'))}` : '';
    clear(panel.querySelector('.body'), data.names.length
      ? table([
        { key: 'name', label: 'Score', render: (n) => h('a', { href: `/quality?name=${encodeURIComponent(n.name)}${range}` }, n.name) },
        { key: 'count', label: 'Scores', num: true, render: (n) => f.int(n.count) },
        { key: 'avg', label: 'Mean', num: true, render: (n) => f.num(n.avg, 3) },
      ], data.names.slice(0, 8), { caption: 'Quality scores in this range', testid: 'quality-summary-table',
        rowAttrs: (n) => ({ 'data-name': n.name }) })
      : h('p', { class: 'muted' }, 'No quality scores in this range.'));
  } catch (error) {
    // the overview reports the same failure in its own message box; here a short note is enough
    clear(panel.querySelector('.body'), h('p', { class: 'muted' }, `Scores could not be loaded: ${error.message}`));
  }
  panel.dataset.loaded = 'true';
}

state.resolveRange().then(load);  // the overview's range, once the time bar knows it
