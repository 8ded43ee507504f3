// Number and time formatting, fixed to en-US so pages read the same everywhere (and in tests).

const nf = (opts) => new Intl.NumberFormat('en-US', opts);
const INT = nf({ maximumFractionDigits: 0 });

export const dash = '—';

export function int(value) { return value === null || value === undefined ? dash : INT.format(value); }

export function num(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  return nf({ maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(value);
}

export function usd(value) {
  if (value === null || value === undefined) return dash;
  if (value === 0) return '$0.00';
  if (Math.abs(value) >= 1) return '$' + nf({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(value);
  return '$' + Number(value.toPrecision(3)).toString();
}

export function pct(ratio, digits = 1) {
  if (ratio === null || ratio === undefined) return dash;
  return `${num(ratio * 100, digits)}%`;
}

export function ms(value) {
  if (value === null || value === undefined) return dash;
  if (value >= 60000) return `${num(value / 60000, 1)} min`;
  if (value >= 1000) return `${num(value / 1000, 2)} s`;
  if (value >= 1 || value === 0) return `${num(value, 0)} ms`;
  return `${num(value * 1000, 0)} µs`;
}

export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined) return dash;
  if (perSecond >= 1) return `${num(perSecond, 2)}/s`;
  return `${num(perSecond * 60, 2)}/min`;
}

export function time(iso) {
  if (!iso) return dash;
  const d = new Date(iso);
  return d.toLocaleString('en-GB', { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit',
    minute: '2-digit', second: '2-digit', hour12: false });
}

/** Compact duration for axis labels: 50ms, 2s, 1m. */
export function msShort(value) {
  if (value >= 60000) return `${num(value / 60000, 1)}m`;
  if (value >= 1000) return `${num(value / 1000, 1)}s`;
  return `${num(value, 0)}ms`;
}

export function shortId(id, n = 12) { return id && id.length > n ? id.slice(0, n) + '…' : (id || dash); }
