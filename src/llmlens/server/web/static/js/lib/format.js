// Number and time formatting, fixed to en-US so pages read the same everywhere (and in tests).

const nf = (opts) => new Intl.NumberFormat('en-US', opts);
const INT = nf({ maximumFractionDigits: 0 });

export const dash = '—';

export function int(value) { return value === null || value === undefined ? dash : INT.format(value); }

export function num(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  return nf({ maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(value);
}

const CENTS = nf({ minimumFractionDigits: 2, maximumFractionDigits: 2 });
const SMALL = nf({ maximumSignificantDigits: 3 });  // never exponent notation: 4e-8 reads $0.00000004
const TINY = 1e-9;

/** Dollars: cents from $1 up, else three significant digits in plain decimals; below a billionth, "<$0.000000001". */
export function usd(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  if (value === 0) return '$0.00';
  const sign = value < 0 ? '-' : '';
  const size = Math.abs(value);
  if (size >= 1) return `${sign}$${CENTS.format(size)}`;
  if (size < TINY) return `${sign ? '>-' : '<'}$0.000000001`;
  return `${sign}$${SMALL.format(size)}`;
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
