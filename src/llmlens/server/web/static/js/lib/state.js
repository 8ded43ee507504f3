// Page state lives in the URL query string, so every view can be shared and reloaded.

export const RANGES = [
  ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['6h', 'Last 6 hours'], ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['custom', 'Custom…'],
];
const SHARED = ['range', 'start', 'end'];  // carried across pages by the navigation links

export function params() { return new URLSearchParams(window.location.search); }

export function get(key, fallback = '') { return params().get(key) ?? fallback; }

/** Update keys (null/'' deletes), push a history entry unless replace, and resync nav links. */
export function update(changes, { replace = false } = {}) {
  const p = params();
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === '') p.delete(key);
    else p.set(key, value);
  }
  const query = p.toString();
  const url = window.location.pathname + (query ? `?${query}` : '');
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  syncNav();
}

/** The API's start/end for the current range: relative (-24h) or the custom RFC 3339 pair. */
export function timeParams(defaultRange = '24h') {
  const p = params();
  if (p.get('range') === 'custom' && p.get('start')) return { start: p.get('start'), end: p.get('end') || undefined };
  const range = p.get('range') || defaultRange;
  return { start: `-${RANGES.some(([k]) => k === range) ? range : defaultRange}` };
}

export function syncNav() {
  const p = params();
  const keep = new URLSearchParams();
  for (const key of SHARED) if (p.get(key)) keep.set(key, p.get(key));
  for (const link of document.querySelectorAll('a[data-nav]')) {
    const base = link.getAttribute('href').split('?')[0];
    link.setAttribute('href', keep.toString() ? `${base}?${keep}` : base);
  }
}
