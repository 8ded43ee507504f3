// Tiny DOM helpers: build elements, show errors and empty states.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    // CSSOM, not a style attribute: the Content-Security-Policy blocks style attributes.
    else if (key === 'style') {
      if (typeof value !== 'object') throw new TypeError('h(): style must be an object of properties');
      Object.assign(el.style, value);
    }
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function $(selector, root = document) { return root.querySelector(selector); }

/** Show an API or network error in `el`, with the caret under a query's error position. */
export function showError(el, error, query = null) {
  const box = h('div', { class: 'message error', role: 'alert', 'data-testid': 'error' },
    h('strong', {}, error.status ? `Error ${error.status}: ` : 'Error: '), error.message);
  if (query !== null && error.position !== null && error.position !== undefined) {
    const before = query.slice(0, error.position);
    const line = before.split('\n').length - 1;
    const column = before.length - before.lastIndexOf('\n') - 1;
    const text = query.split('\n')[line] || '';
    box.append(h('pre', { class: 'caret', 'aria-label': 'where the error is' },
      `${text}\n${' '.repeat(column)}^`));
  }
  clear(el, box);
}

export function emptyState(el, title, ...body) {
  clear(el, h('div', { class: 'message empty', 'data-testid': 'empty' }, h('strong', {}, title), ...body));
}

/** Mark the page as rendered (tests wait on data-ready; data-renders counts refreshes). */
// A number tile of a dashboard; data-value holds the raw number for tests and tools.
export function tile(id, label, value, raw, sub = '', tone = '') {
  return h('div', { class: `tile ${tone}`, 'data-testid': `tile-${id}`, 'data-value': raw ?? '' },
    h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'sub' }, sub));
}

export function markReady(state = 'ok') {
  document.body.dataset.readyAt = String(Math.round(performance.now()));  // ms since navigation
  document.body.dataset.ready = state;
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
}

export function setBusy(busy) {
  const status = document.getElementById('status');
  if (busy) delete document.body.dataset.ready;
  if (status) status.textContent = busy ? 'Loading…' : '';
  document.body.setAttribute('aria-busy', busy ? 'true' : 'false');
}

export function otelHint() {
  const origin = window.location.origin;
  return [
    h('p', {}, 'Point an OpenTelemetry SDK at this server (OTLP/HTTP on ', h('code', {}, origin),
      '), then reload:'),
    h('pre', {}, `export OTEL_EXPORTER_OTLP_ENDPOINT=${origin}\n` +
      `# or, in Python:\nimport llmlens\nllmlens.init(service_name="my-app", endpoint="${origin}")`),
    h('p', {}, 'Or try the demo: ', h('code', {}, 'llmlens demo'), '.'),
  ];
}
