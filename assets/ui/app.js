// The console's entry point: wires the views together, keeps the token,
// and refreshes the figures every REFRESH_MS.

import { api, ApiError, describeError, getToken, onAuthError, setToken } from './api.js';
import { KeyBrowser } from './browse.js';
import { ChangeFeed } from './feed.js';
import { drawLineChart } from './charts.js';
import { formatBytes, formatCount, formatDuration, formatPercent, formatRate } from './format.js';
import { KeyForms } from './keys.js';
import { LiveStats } from './live.js';
import { NamespaceTable } from './namespaces.js';

const REFRESH_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
/** Lines on the keys chart; more would be unreadable. */
const MAX_NAMESPACE_LINES = 6;
const PALETTE = ['#1f6fd1', '#d1495b', '#2a9d5c', '#8e5bd1', '#e08a00', '#1598a8'];
const POLL_PATHS = ['/stats', '/performance'];

const $ = (id) => document.getElementById(id);

const live = new LiveStats(WINDOW_MS);
/** Each namespace keeps its colour while it is on the chart. */
const colours = new Map();
let performanceAvailable = true;
let timer = null;
let refreshing = null;
let lastSample = null;

// ---- The token ------------------------------------------------------------

function setupToken() {
  const input = $('token');
  input.value = getToken();
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    hideAuthBanner();
    setStatus(input.value.trim() ? 'Token set; refreshing…' : 'No token; refreshing…');
    refreshNow();
  });
  $('token-clear').addEventListener('click', () => {
    input.value = '';
    setToken('');
    hideAuthBanner();
    refreshNow();
  });
  $('auth-focus').addEventListener('click', () => input.focus());
  onAuthError(showAuthBanner);
}

let authBannerPath = null;

/** The server's details have no final full stop; the banner adds a sentence. */
function sentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function showAuthBanner(error) {
  authBannerPath = error.path;
  $('auth-message').textContent = error.status === 401
    ? `The server refused the request (401): ${sentence(error.detail)} Enter a valid API token in the “API token” field at the top.`
    : `This token is not allowed here (403): ${sentence(error.detail)} Use a token with access in the “API token” field at the top.`;
  $('auth-banner').hidden = false;
  $('token').setAttribute('aria-invalid', 'true');
  $('token-form').classList.add('attention');
}

function hideAuthBanner() {
  authBannerPath = null;
  $('auth-banner').hidden = true;
  $('token').removeAttribute('aria-invalid');
  $('token-form').classList.remove('attention');
}

// ---- Refreshing -----------------------------------------------------------

function setStatus(text, isError = false) {
  const status = $('server-status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

/**
 * `/performance` is optional: a server without it, or a token that may not
 * read it (a tenant's), gets its operations charted from `/stats` instead.
 */
async function fetchPerformance() {
  if (!performanceAvailable) return null;
  try {
    return await api.performance();
  } catch (error) {
    // A 404 will not change; a 403 may, with another token: ask again.
    if (error instanceof ApiError && error.status === 404) performanceAvailable = false;
    return null;
  }
}

async function refresh() {
  const [stats, performance] = await Promise.all([
    api.stats().catch((error) => error),
    fetchPerformance(),
  ]);
  if (stats instanceof Error) {
    showRefreshError(stats);
    return;
  }
  if (POLL_PATHS.includes(authBannerPath)) hideAuthBanner();
  const now = Date.now();
  live.add(now, stats, performance);
  lastSample = now;
  table.update(stats);
  updateNamespaceList(stats);
  drawCharts(now);
  setStatus(`Connected · up ${formatDuration(stats.uptime_seconds)} · ${formatCount(stats.total_keys)} keys · `
    + `${formatBytes(stats.used_bytes)} · updated ${new Date(now).toLocaleTimeString()}`);
}

function showRefreshError(error) {
  if (error instanceof ApiError && error.isAuth) {
    setStatus(`Refused (${error.status}): set an API token.`, true);
    table.showMessage(`Set an API token allowed to read /stats to see the namespaces (${error.status}).`);
  } else {
    setStatus(`Cannot refresh: ${sentence(describeError(error))} Retrying every ${REFRESH_MS / 1000} s.`, true);
  }
}

/** One refresh at a time; REFRESH_MS after the end of the last one. */
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(refreshNow, REFRESH_MS);
}

function refreshNow() {
  if (!refreshing) {
    refreshing = refresh().finally(() => {
      refreshing = null;
      schedule();
    });
  }
  return refreshing;
}

// ---- Views ----------------------------------------------------------------

function updateNamespaceList(stats) {
  const names = Object.keys(stats.namespaces || {}).sort();
  const list = $('namespace-list');
  if (list.dataset.names === names.join('\n')) return;
  list.dataset.names = names.join('\n');
  list.replaceChildren(...names.map((name) => Object.assign(document.createElement('option'), { value: name })));
}

function colourOf(label) {
  if (label === '(default)') return '#6b7280';
  if (!colours.has(label)) {
    const used = new Set(colours.values());
    colours.set(label, PALETTE.find((c) => !used.has(c)) || PALETTE[colours.size % PALETTE.length]);
  }
  return colours.get(label);
}

function drawCharts(now) {
  const axis = { now, windowMs: live.visibleWindow(now) };
  drawLineChart($('chart-ops').querySelector('svg'),
    [{ name: 'operations per second', color: PALETTE[0], points: live.ops }],
    { ...axis, formatY: formatRate });
  $('chart-ops-current').textContent = `${formatRate(LiveStats.latest(live.ops))} /s`;
  $('charts-hint').textContent = `Sampled every ${REFRESH_MS / 1000} s over the last ${WINDOW_MS / 60000} minutes; `
    + `operations from ${live.opsSource ?? '…'}, not counting this console's polling.`;

  drawLineChart($('chart-hits').querySelector('svg'),
    [{ name: 'hit rate', color: PALETTE[2], points: live.hitRate }],
    { ...axis, formatY: formatPercent, yMax: 1 });
  $('chart-hits-current').textContent = formatPercent(LiveStats.latest(live.hitRate));

  const top = live.topNamespaces(MAX_NAMESPACE_LINES);
  for (const label of colours.keys()) {
    if (!top.some((s) => s.label === label)) colours.delete(label);
  }
  const series = top.map(({ label, points }) => ({ name: label, color: colourOf(label), points }));
  drawLineChart($('chart-keys').querySelector('svg'), series, { ...axis, formatY: formatCount });
  $('chart-keys-current').textContent = top.length ? `(${top.length} shown)` : '';
  drawLegend(top);
}

function drawLegend(top) {
  $('chart-keys-legend').replaceChildren(...top.map(({ label, latest }) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    // CSSOM, not a style attribute: allowed by the page's CSP.
    swatch.style.backgroundColor = colourOf(label);
    item.append(swatch, `${label}: ${formatCount(latest)}`);
    return item;
  }));
}

/** Charts are drawn at their real width: draw again when it changes. */
function redrawOnResize() {
  let pending = false;
  window.addEventListener('resize', () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      drawCharts(lastSample ?? Date.now());
    });
  });
}

// ---- Wiring ---------------------------------------------------------------

const keyForms = new KeyForms({
  setForm: $('set-form'),
  getForm: $('get-form'),
  deleteButton: $('delete-submit'),
  result: $('key-result'),
  onChange: () => refreshNow(),
});

const feed = new ChangeFeed({ status: $('feed-status'), list: $('feed-list') });

const browser = new KeyBrowser({
  onOpen: (namespace, prefix) => feed.follow(namespace, prefix),
  form: $('browse-form'),
  summary: $('browse-summary'),
  list: $('browse-list'),
  prev: $('browse-prev'),
  next: $('browse-next'),
  page: $('browse-page'),
  onPick: (namespace, key) => keyForms.show(namespace, key),
});

const table = new NamespaceTable({
  table: $('ns-table'),
  result: $('ns-result'),
  dialog: $('confirm-dialog'),
  onBrowse: (namespace) => browser.browse(namespace),
  onCleared: (namespace) => {
    refreshNow();
    browser.reloadIf(namespace);
  },
});

setupToken();
redrawOnResize();
drawCharts(Date.now()); // empty axes and "Waiting for data…" until the first samples
refreshNow();
