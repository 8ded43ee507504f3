// A cost as the UI shows it everywhere: calls with no known price are not in a sum, so a sum that
// leaves some out says so ("$0.012 + 2 unpriced"), and one that leaves all out reads "unpriced".
import { h } from './dom.js';
import { usd } from './format.js';

/** The words for a cost: `value` summed over the priced calls of `calls`, `unpriced` of them not. */
export function costText(value, unpriced = 0, calls = 0) {
  if (unpriced > 0 && unpriced >= calls) return 'unpriced';
  if (unpriced > 0) return `${usd(value)} + ${unpriced} unpriced`;
  return usd(value);
}

/** The same as an element, with a tooltip saying what the sum leaves out. */
export function cost(value, unpriced = 0, calls = 0) {
  if (unpriced > 0 && unpriced >= calls) {
    return h('span', { class: 'badge warn', 'data-unpriced': unpriced,
      title: `no known price for ${unpriced === 1 ? 'this call' : `these ${unpriced} calls`}` }, 'unpriced');
  }
  if (unpriced > 0) {
    return h('span', { class: 'partial-cost', 'data-unpriced': unpriced,
      title: `${unpriced} of ${calls} calls have no known price: the sum leaves them out` },
    usd(value), ' ', h('span', { class: 'unpriced' }, `+ ${unpriced} unpriced`));
  }
  return usd(value);
}
