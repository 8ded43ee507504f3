// Quality: each score name over time, by model and app, and its distribution (GET /api/v1/quality).
import { getJSON } from './lib/api.js';
import { barChart, timeChart } from './lib/charts.js';
import { $, clear, emptyState, h, tile } from './lib/dom.js';
import * as f from './lib/format.js';
import { latestOnly } from './lib/loader.js';
import * as state from './lib/state.js';
import { table } from './lib/table.js';
import { filterSelect, timebar } from './lib/timebar.js';

const form = $('#filters');
const nameSelect = filterSelect('name', 'Score', { onChange: () => load(), allLabel: 'The most recorded' });
const modelSelect = filterSelect('model', 'Model', { onChange: () => load() });
const appSelect = filterSelect('app', 'App', { onChange: () => load() });
const groupBy = h('select', { id: 'f-group_by', name: 'group_by' },
  h('option', { value: 'model' }, 'model'), h('option', { value: 'app' }, 'app'));
groupBy.value = state.get('group_by', 'model');
groupBy.addEventListener('change', () => { state.update({ group_by: groupBy.value === 'model' ? null : groupBy.value }); load(); });
form.append(nameSelect, h('label', { for: 'f-group_by' }, 'Lines by', groupBy), modelSelect, appSelect);

const load = latestOnly(async () => {
  const params = { ...state.timeParams(), name: state.get('name'), model: state.get('model'), app: state.get('app'),
    group_by: state.get('group_by', 'model') };
  // the choices of model and app come from the unfiltered view of the same score
  const [data, all] = await Promise.all([getJSON('/api/v1/quality', params),
    getJSON('/api/v1/quality', { ...params, model: null, app: null })]);
  return { data, all };
}, render);
timebar(form, () => load());  // the first load, once the range is known

function render({ data, all }) {
  nameSelect.setChoices(data.names.map((n) => n.name));
  modelSelect.setChoices(all.groups.map((g) => g.model).filter(Boolean));
  appSelect.setChoices(all.groups.map((g) => g.app).filter(Boolean));
  $('#quality').hidden = !data.name;
  if (!data.name) {
    emptyState($('#message'), 'No quality scores in this time range.',
      h('p', {}, 'Record scores with ', h('code', {}, 'llmlens.score("helpfulness", 0.8)'),
        ' inside a trace (or pass trace_id= from an evaluator), or send OTel ', h('code', {}, 'gen_ai.evaluation.result'),
        ' events. The demo records a groundedness score for every answer.'));
    return;
  }
  clear($('#message'));
  $('#page-title').textContent = `Quality: ${data.name}`;
  const count = data.groups.reduce((acc, g) => acc + g.count, 0);
  const sum = data.groups.reduce((acc, g) => acc + g.avg * g.count, 0);
  const min = count ? Math.min(...data.groups.map((g) => g.min)) : null;
  const max = count ? Math.max(...data.groups.map((g) => g.max)) : null;
  clear($('#tiles'),
    tile('count', 'Scores', f.int(count), count, `${data.groups.length} model × app group${data.groups.length === 1 ? '' : 's'}`),
    tile('mean', 'Mean', count ? f.num(sum / count, 3) : f.dash, count ? sum / count : null),
    tile('min', 'Lowest', f.num(min, 3), min),
    tile('max', 'Highest', f.num(max, 3), max));
  timeChart($('#chart-series'), {
    title: `Mean ${data.name} by ${data.group_by}`, buckets: data.buckets, fmt: (v) => f.num(v, 3),
    spanGaps: true,  // scores come with answers, not every bucket has one
    series: data.series.map((s) => ({ label: s.key || `(no ${data.group_by})`, values: s.avg })),
  });
  barChart($('#chart-distribution'), {
    title: `Distribution of ${data.name}`, values: data.distribution.map((b) => b.count), fmt: f.int,
    labels: data.distribution.map((b) => `${f.num(b.lo, 2)}–${f.num(b.hi, 2)}`),
  });
  clear($('#groups'), table([
    { key: 'model', label: 'Model', render: (g) => g.model || f.dash },
    { key: 'app', label: 'App', render: (g) => g.app || f.dash },
    { key: 'count', label: 'Scores', num: true, render: (g) => f.int(g.count) },
    { key: 'avg', label: 'Mean', num: true, render: (g) => f.num(g.avg, 3) },
    { key: 'p10', label: 'p10', num: true, render: (g) => f.num(g.p10, 3) },
    { key: 'p50', label: 'Median', num: true, render: (g) => f.num(g.p50, 3) },
    { key: 'p90', label: 'p90', num: true, render: (g) => f.num(g.p90, 3) },
    { key: 'min', label: 'Lowest', num: true, render: (g) => f.num(g.min, 3) },
    { key: 'max', label: 'Highest', num: true, render: (g) => f.num(g.max, 3) },
  ], data.groups, { caption: `${data.name} by model and app`, testid: 'quality-groups-table',
    rowAttrs: (g) => ({ 'data-model': g.model || '', 'data-app': g.app || '', 'data-count': g.count, 'data-avg': g.avg }) }));
  clear($('#names'), table([
    { key: 'name', label: 'Score', render: (n) => (n.name === data.name ? h('strong', {}, n.name)
      : h('a', { href: `?${new URLSearchParams({ ...Object.fromEntries(state.params()), name: n.name })}` }, n.name)) },
    { key: 'count', label: 'Scores', num: true, render: (n) => f.int(n.count) },
    { key: 'avg', label: 'Mean', num: true, render: (n) => f.num(n.avg, 3) },
    { key: 'min', label: 'Lowest', num: true, render: (n) => f.num(n.min, 3) },
    { key: 'max', label: 'Highest', num: true, render: (n) => f.num(n.max, 3) },
  ], data.names, { caption: 'Score names in this range', testid: 'quality-names-table',
    rowAttrs: (n) => ({ 'data-name': n.name }) }));
  if (data.labels.length) {
    clear($('#labels'), table([
      { key: 'label', label: 'Label' }, { key: 'count', label: 'Scores', num: true, render: (l) => f.int(l.count) },
    ], data.labels, { caption: `Labels of ${data.name}`, testid: 'quality-labels-table' }));
  } else {
    clear($('#labels'), h('p', { class: 'muted' }, `No labels on ${data.name} (a label is the category of a score, e.g. "thumbs up").`));
  }
}
