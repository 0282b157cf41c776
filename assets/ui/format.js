// Turning the server's raw figures into what a person reads.

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB": powers of 1024, as `--max-memory` counts them. */
export function formatBytes(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** 12345 → "12,345"; "—" when the server did not send the figure. */
export function formatCount(n) {
  return typeof n === 'number' && Number.isFinite(n) ? integer.format(n) : '—';
}

/** Operations per second: one decimal below 100, whole numbers above. */
export function formatRate(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return n < 100 ? decimal.format(n) : integer.format(n);
}

/** A ratio from 0 to 1 → "97.5 %"; "—" when undefined (no reads yet). */
export function formatPercent(ratio) {
  if (typeof ratio !== 'number' || !Number.isFinite(ratio)) return '—';
  return `${decimal.format(ratio * 100)} %`;
}

/** hits / (hits + misses), or null when there were no reads. */
export function hitRate(hits, misses) {
  const reads = (hits || 0) + (misses || 0);
  return reads > 0 ? (hits || 0) / reads : null;
}

/** 3725 seconds → "1 h 2 min". */
export function formatDuration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** The label of a namespace: the default one has no name a client can give. */
export function namespaceLabel(ns) {
  return ns === null || ns === undefined || ns === '' ? '(default)' : ns;
}
