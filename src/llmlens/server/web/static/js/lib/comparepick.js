// Picking two traces of a list to compare: a checkbox column and a "Compare selected" button.
import { h } from './dom.js';
import * as f from './format.js';

const picked = [];  // trace ids, in the order they were ticked: the first is A, the second B
let button = null;

function sync() {
  for (const box of document.querySelectorAll('input[data-compare]')) box.checked = picked.includes(box.dataset.compare);
  if (!button) return;
  button.disabled = picked.length !== 2;
  button.textContent = picked.length === 2 ? 'Compare selected' : `Compare selected (${picked.length} of 2 ticked)`;
}

function toggle(traceId, on) {
  const at = picked.indexOf(traceId);
  if (on && at < 0) picked.push(traceId);
  if (!on && at >= 0) picked.splice(at, 1);
  if (picked.length > 2) picked.shift();  // a third tick replaces the oldest
  sync();
}

/** The table column: a labelled checkbox per trace row. */
export const pickColumn = {
  key: 'compare', label: 'Compare',
  render: (r) => h('input', { type: 'checkbox', 'data-compare': r.trace_id, checked: picked.includes(r.trace_id),
    'aria-label': `Select trace ${f.shortId(r.trace_id)} (${r.root_name || 'root not arrived'}) for comparison`,
    onchange: (event) => toggle(r.trace_id, event.target.checked) }),
};

/** Adds the "Compare selected" button to `container`; it opens /compare?a=&b= for the two ticked traces. */
export function comparePicker(container) {
  button = h('button', { type: 'button', class: 'secondary compare-pick', id: 'compare-selected', disabled: true,
    onclick: () => {
      if (picked.length === 2) window.location.assign(`/compare?a=${picked[0]}&b=${picked[1]}`);
    } });
  container.append(button);
  sync();
}
