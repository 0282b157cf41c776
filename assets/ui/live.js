// The history behind the live charts: one sample per refresh, turned into
// rates by differences between consecutive samples, kept for a fixed window.

import { hitRate, namespaceLabel } from './format.js';

/**
 * Routes whose requests are the console watching, not traffic: without
 * this the console's own polling would show as about one operation per
 * second on an idle server.
 */
const MONITORING_ROUTES = ['/stats', '/performance', '/', '/ui', '/ui/', '/ui/{file}'];

/**
 * Requests answered so far, not counting monitoring, from `/performance`;
 * or, when the server has no `/performance`, reads (hits + misses) from
 * `/stats`, the only operation counter it keeps.
 */
function operationCount(stats, performance) {
  if (performance && typeof performance.total_operations === 'number') {
    const breakdown = performance.operation_breakdown || {};
    const watching = MONITORING_ROUTES.reduce((sum, route) => sum + (breakdown[route]?.count || 0), 0);
    return { count: performance.total_operations - watching, source: '/performance' };
  }
  return { count: (stats.cache_hits || 0) + (stats.cache_misses || 0), source: '/stats reads' };
}

/** `{label: total_keys}` for every namespace, the default one included. */
function keysByNamespace(stats) {
  const keys = new Map();
  keys.set(namespaceLabel(null), stats.default_namespace?.total_keys ?? 0);
  for (const [name, figures] of Object.entries(stats.namespaces || {})) {
    keys.set(name, figures.total_keys ?? 0);
  }
  return keys;
}

export class LiveStats {
  constructor(windowMs) {
    this.windowMs = windowMs;
    this.clear();
  }

  clear() {
    /** When the first sample of this history was taken. */
    this.startedAt = null;
    this.previous = null;
    /** [[timeMs, operations per second | null]] */
    this.ops = [];
    /** [[timeMs, hit rate over the interval | null]] */
    this.hitRate = [];
    /** label → [[timeMs, keys]] */
    this.keys = new Map();
    this.opsSource = null;
  }

  /** Adds the sample taken at `now` (ms). `performance` may be null. */
  add(now, stats, performance) {
    // A restarted server counts from zero again: start a new history.
    if (this.previous && stats.uptime_seconds < this.previous.uptime) this.clear();
    const ops = operationCount(stats, performance);
    const sample = {
      time: now,
      uptime: stats.uptime_seconds,
      operations: ops.count,
      source: ops.source,
      hits: stats.cache_hits || 0,
      misses: stats.cache_misses || 0,
    };
    const previous = this.previous;
    this.startedAt ??= now;
    if (previous) {
      const seconds = (now - previous.time) / 1000;
      // Comparing counts from two different sources would make a spike.
      const comparable = previous.source === sample.source && seconds > 0;
      const delta = sample.operations - previous.operations;
      this.ops.push([now, comparable && delta >= 0 ? delta / seconds : null]);
      this.hitRate.push([now, hitRate(sample.hits - previous.hits, sample.misses - previous.misses)]);
    }
    this.opsSource = ops.source;
    this.addKeys(now, keysByNamespace(stats));
    this.previous = sample;
    this.trim(now);
  }

  addKeys(now, current) {
    for (const [label, count] of current) {
      if (!this.keys.has(label)) this.keys.set(label, []);
      this.keys.get(label).push([now, count]);
    }
    // A namespace cleared or emptied leaves the listing: it now holds 0.
    for (const [label, points] of this.keys) {
      if (!current.has(label)) points.push([now, 0]);
    }
  }

  trim(now) {
    const since = now - this.windowMs;
    const keepFrom = (points) => {
      const first = points.findIndex(([t]) => t >= since);
      points.splice(0, first === -1 ? points.length : first);
    };
    keepFrom(this.ops);
    keepFrom(this.hitRate);
    for (const [label, points] of this.keys) {
      keepFrom(points);
      if (points.every(([t, v]) => t < since || v === 0)) this.keys.delete(label);
    }
  }

  /**
   * The span the charts show: whole minutes, from one to the full window,
   * growing with the history so that a fresh console does not squeeze its
   * first samples against the right edge of a five-minute axis.
   */
  visibleWindow(now) {
    const elapsed = this.startedAt === null ? 0 : now - this.startedAt;
    const minutes = Math.min(this.windowMs / 60000, Math.max(1, Math.ceil(elapsed / 60000)));
    return minutes * 60000;
  }

  /** The `limit` namespaces holding the most keys now, biggest first. */
  topNamespaces(limit) {
    return [...this.keys.entries()]
      .map(([label, points]) => ({ label, points, latest: points.at(-1)?.[1] ?? 0 }))
      .sort((a, b) => b.latest - a.latest || a.label.localeCompare(b.label))
      .slice(0, limit);
  }

  /** The latest value of a series, or null. */
  static latest(points) {
    for (let i = points.length - 1; i >= 0; i -= 1) {
      if (points[i][1] !== null) return points[i][1];
    }
    return null;
  }
}
