// Accessible data tables from column specs: [{key, label, num, render(row) -> Node|string}].
import { h } from './dom.js';

export function table(columns, rows, { caption = null, testid = null, rowAttrs = null } = {}) {
  return h('table', { 'data-testid': testid },
    caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
    h('tbody', {}, rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : {},
      columns.map((c) => h('td', { class: c.num ? 'num' : null, 'data-col': c.key },
        c.render ? c.render(row) : row[c.key]))))));
}
