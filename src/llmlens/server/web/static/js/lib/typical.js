// "Compare with a typical trace": the trace of the same root service and span name whose duration is
// nearest the median over the day around this one (GET /api/v1/traces/typical), opened in /compare
// as the baseline A with this trace as B.
import { getJSON } from './api.js';
import { h, showError } from './dom.js';

const DAY_MS = 24 * 3600e3;

export function typicalButton(container, root, traceId, messageEl) {
  const at = Date.parse(root.start_time);
  const button = h('button', { type: 'button', class: 'secondary compare-pick', 'data-testid': 'compare-typical',
    title: `The ${root.service} · ${root.name} trace with the median duration of the day around this one`,
    onclick: async () => {
      button.disabled = true;
      try {
        const typical = await getJSON('/api/v1/traces/typical', { service: root.service, name: root.name,
          start: new Date(at - DAY_MS).toISOString(), end: new Date(at + DAY_MS).toISOString(), exclude: traceId });
        window.location.assign(`/compare?a=${typical.trace_id}&b=${traceId}`);
      } catch (error) {
        showError(messageEl, error);
        button.disabled = false;
      }
    } }, 'Compare with a typical trace of this root span');
  container.append(' ', button);
  return button;
}
