// Line charts over a sliding time window, drawn as SVG by hand: a few
// dozen lines of code instead of a charting library, and nothing fetched.

const SVG_NS = 'http://www.w3.org/2000/svg';
const MARGIN = { top: 10, right: 10, bottom: 22, left: 52 };
const DEFAULT_HEIGHT = 150;

function svgElement(name, attributes = {}) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [attribute, value] of Object.entries(attributes)) {
    element.setAttribute(attribute, String(value));
  }
  return element;
}

/** The smallest 1, 2 or 5 × 10^n at or above `value`, so the axis reads well. */
export function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const fraction = value / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

function maxValue(series, since) {
  let max = 0;
  for (const { points } of series) {
    for (const [t, v] of points) {
      if (t >= since && v !== null && v > max) max = v;
    }
  }
  return max;
}

/**
 * The `d` of a path through `points`, lifting the pen at null values (no
 * sample, or nothing to measure, such as a hit rate with no reads) so gaps
 * show as gaps rather than as made-up lines. Returns the path and how many
 * points it went through.
 */
function linePath(points, x, y, since) {
  let d = '';
  let penDown = false;
  let count = 0;
  for (const [t, v] of points) {
    if (t < since || v === null) {
      penDown = false;
      continue;
    }
    d += `${penDown ? 'L' : 'M'}${x(t).toFixed(1)} ${y(v).toFixed(1)}`;
    penDown = true;
    count += 1;
  }
  return { d, count };
}

function drawGrid(plot, { left, right, top, bottom }, yMax, formatY, windowMs) {
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - fraction * (bottom - top);
    plot.append(svgElement('line', { class: 'grid', x1: left, x2: right, y1: y, y2: y }));
    const label = svgElement('text', { class: 'axis', x: left - 6, y: y + 4, 'text-anchor': 'end' });
    label.textContent = formatY(yMax * fraction);
    plot.append(label);
  }
  const minutes = Math.round(windowMs / 60000);
  const start = svgElement('text', { class: 'axis', x: left, y: bottom + 16, 'text-anchor': 'start' });
  start.textContent = `−${minutes} min`;
  const end = svgElement('text', { class: 'axis', x: right, y: bottom + 16, 'text-anchor': 'end' });
  end.textContent = 'now';
  plot.append(start, end);
}

/**
 * Draws `series` ([{name, color, points: [[timeMs, value|null], ...]}]) into
 * `svg`, replacing the previous drawing and keeping the svg's <title>.
 * Options: now and windowMs (the time axis), formatY (axis labels), yMax
 * (a fixed top, e.g. 1 for a ratio; otherwise from the data).
 */
export function drawLineChart(svg, series, { now, windowMs, formatY, yMax: fixedMax }) {
  const width = Math.max(200, Math.round(svg.clientWidth || svg.parentElement.clientWidth || 300));
  const height = Math.round(svg.clientHeight || DEFAULT_HEIGHT);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.querySelector('g.plot')?.remove();

  const since = now - windowMs;
  const box = {
    left: MARGIN.left,
    right: width - MARGIN.right,
    top: MARGIN.top,
    bottom: height - MARGIN.bottom,
  };
  const yMax = fixedMax ?? niceCeiling(maxValue(series, since));
  const x = (t) => box.left + ((t - since) / windowMs) * (box.right - box.left);
  const y = (v) => box.bottom - (Math.min(v, yMax) / yMax) * (box.bottom - box.top);

  const plot = svgElement('g', { class: 'plot' });
  drawGrid(plot, box, yMax, formatY, windowMs);
  let drawn = 0;
  for (const { name, color, points } of series) {
    const { d, count } = linePath(points, x, y, since);
    if (count === 0) continue;
    drawn += count;
    plot.append(svgElement('path', {
      class: 'line', d, stroke: color, 'data-series': name, 'data-points': count,
    }));
    // A dot on the latest value, so a line of one point still shows.
    const last = [...points].reverse().find(([t, v]) => t >= since && v !== null);
    plot.append(svgElement('circle', { class: 'dot', cx: x(last[0]), cy: y(last[1]), r: 3, fill: color }));
  }
  if (drawn === 0) {
    const waiting = svgElement('text', {
      class: 'waiting', x: (box.left + box.right) / 2, y: (box.top + box.bottom) / 2, 'text-anchor': 'middle',
    });
    waiting.textContent = 'Waiting for data…';
    plot.append(waiting);
  }
  svg.append(plot);
  svg.dataset.points = String(drawn);
}
