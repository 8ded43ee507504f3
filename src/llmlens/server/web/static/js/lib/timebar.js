// Time range picker (presets and custom) with auto-refresh; state in the URL.
import { h } from './dom.js';
import * as state from './state.js';

const REFRESH = [['', 'Off'], ['10s', '10 s'], ['30s', '30 s'], ['1m', '1 min'], ['5m', '5 min']];
const SECONDS = { s: 1, m: 60 };

function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * Adds the range picker, auto-refresh and a Refresh button to `form`; calls `onChange()` for the first
 * load once the range is known (the URL's, else the data's: state.resolveRange, the same rule on every
 * page), when the range changes, on refresh ticks and on back/forward navigation.
 */
export function timebar(form, onChange, { refresh = true } = {}) {
  const range = h('select', { id: 'range', name: 'range' },
    state.RANGES.map(([key, label]) => h('option', { value: key }, label)));
  range.value = state.get('range', '1h');
  const now = new Date();
  const from = h('input', { type: 'datetime-local', id: 'range-from' });
  const to = h('input', { type: 'datetime-local', id: 'range-to' });
  from.value = toLocalInput(state.get('start') && range.value === 'custom' ? new Date(state.get('start')) : new Date(now - 3600e3));
  to.value = toLocalInput(state.get('end') && range.value === 'custom' ? new Date(state.get('end')) : now);
  const custom = h('span', { class: 'custom-range', hidden: range.value !== 'custom' },
    h('label', { for: 'range-from' }, 'From', from), ' ', h('label', { for: 'range-to' }, 'To', to),
    h('button', { type: 'button', class: 'secondary', onclick: applyCustom }, 'Apply'));
  const every = h('select', { id: 'auto-refresh' }, REFRESH.map(([key, label]) => h('option', { value: key }, label)));
  every.value = state.get('refresh', '');

  function applyCustom() {
    if (!from.value || !to.value) return;
    state.update({ range: 'custom', start: new Date(from.value).toISOString(), end: new Date(to.value).toISOString() });
    onChange();
  }
  range.addEventListener('change', () => {
    custom.hidden = range.value !== 'custom';
    if (range.value === 'custom') { from.focus(); return; }
    state.update({ range: range.value, start: null, end: null });
    onChange();
  });
  let timer = null;
  function schedule() {
    clearInterval(timer);
    const match = /^(\d+)([sm])$/.exec(every.value);
    if (match) timer = setInterval(onChange, Number(match[1]) * SECONDS[match[2]] * 1000);
  }
  every.addEventListener('change', () => { state.update({ refresh: every.value || null }, { replace: true }); schedule(); });
  schedule();
  window.addEventListener('popstate', () => {
    range.value = state.get('range', '1h');
    custom.hidden = range.value !== 'custom';
    onChange();
  });

  form.append(h('label', { for: 'range' }, 'Time range', range), custom);
  if (refresh) {
    form.append(h('label', { for: 'auto-refresh' }, 'Auto-refresh', every),
      h('button', { type: 'button', class: 'secondary', onclick: onChange, 'data-testid': 'refresh' }, 'Refresh'));
  }
  state.syncNav();
  state.resolveRange().then((resolved) => {
    range.value = resolved;
    custom.hidden = resolved !== 'custom';
    onChange();
  });
}

/** A labelled <select> for a filter whose choices come from the API; keeps the URL's value. */
export function filterSelect(key, label, { onChange, allLabel = 'All' } = {}) {
  const select = h('select', { id: `f-${key}`, name: key }, h('option', { value: '' }, allLabel));
  select.value = state.get(key);
  select.addEventListener('change', () => { state.update({ [key]: select.value || null }); onChange(); });
  const wrapper = h('label', { for: `f-${key}` }, label, select);
  wrapper.setChoices = (choices) => {
    const current = state.get(key);
    const all = [...new Set([...(choices || []), ...(current ? [current] : [])])].sort();
    select.replaceChildren(h('option', { value: '' }, allLabel), ...all.map((c) => h('option', { value: c }, c)));
    select.value = current;
  };
  return wrapper;
}
