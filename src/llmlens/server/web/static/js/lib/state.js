// Page state lives in the URL query string, so every view can be shared and reloaded.
import { getJSON } from './api.js';

export const RANGES = [
  ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['6h', 'Last 6 hours'], ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['custom', 'Custom…'],
];
const SHARED = ['range', 'start', 'end'];  // carried across pages by the navigation links
const FALLBACK_RANGE = '1h';  // when the server cannot say what its data needs

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

/**
 * The range every page opens on, one rule for all: the URL's, else the one the server picks from its
 * data (GET /api/v1/activity: the smallest preset holding the newest active period), written into the
 * URL so that reloading, sharing and the navigation links keep it.
 */
let resolving = null;  // one question to the server a page, however many parts of it ask

export function resolveRange() {
  if (get('range')) return Promise.resolve(get('range'));
  resolving ??= getJSON('/api/v1/activity')
    .then((activity) => activity.default_range || FALLBACK_RANGE)
    .catch(() => FALLBACK_RANGE)  // the page's own request reports an unreachable server
    .then((range) => { if (!get('range')) update({ range }, { replace: true }); return get('range'); });
  return resolving;
}

/** The API's start/end for the current range: relative (-24h) or the custom RFC 3339 pair. */
export function timeParams(defaultRange = FALLBACK_RANGE) {
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
