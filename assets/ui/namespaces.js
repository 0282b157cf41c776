// The namespaces table: one row per namespace from `/stats` plus the
// default namespace, sortable by any column, with Browse and Clear.

import { api, describeError } from './api.js';
import { formatBytes, formatCount, formatPercent, hitRate, namespaceLabel } from './format.js';

/** Numeric columns sort biggest first on the first click: what one looks for. */
const NUMERIC = new Set(['total_keys', 'used_bytes', 'cache_hits', 'cache_misses', 'hit_rate']);

function rowsFromStats(stats) {
  const row = (namespace, figures = {}) => ({
    namespace,
    label: namespaceLabel(namespace),
    total_keys: figures.total_keys ?? 0,
    used_bytes: figures.used_bytes,
    cache_hits: figures.cache_hits ?? 0,
    cache_misses: figures.cache_misses ?? 0,
    hit_rate: hitRate(figures.cache_hits, figures.cache_misses),
  });
  const rows = [row(null, stats.default_namespace)];
  for (const [name, figures] of Object.entries(stats.namespaces || {})) rows.push(row(name, figures));
  return rows;
}

function compareRows(column, direction) {
  const sign = direction === 'ascending' ? 1 : -1;
  return (a, b) => {
    if (column === 'name') {
      // The default namespace has no name: it sorts before every name.
      return sign * (a.namespace ?? '').localeCompare(b.namespace ?? '');
    }
    // Missing figures (no reads yet for a hit rate) sort as the smallest.
    const x = a[column] ?? -1;
    const y = b[column] ?? -1;
    return sign * (x - y) || (a.namespace ?? '').localeCompare(b.namespace ?? '');
  };
}

function cell(tag, text, className, label) {
  const element = document.createElement(tag);
  element.textContent = text;
  if (className) element.className = className;
  // On phones each row is laid out as a card; CSS shows this label.
  if (label) element.dataset.label = label;
  return element;
}

function actionButton(text, action, namespace, label, className) {
  const button = cell('button', text, className);
  button.type = 'button';
  button.dataset.action = action;
  button.dataset.namespace = namespace ?? '';
  button.setAttribute('aria-label', label);
  return button;
}

/**
 * Asks before an irreversible clear, in the page's own <dialog>; Cancel is
 * focused first so that Enter alone does not destroy data.
 */
export function confirmInDialog(dialog, title, text, confirmLabel) {
  if (typeof dialog.showModal !== 'function') return Promise.resolve(window.confirm(text));
  dialog.querySelector('#confirm-title').textContent = title;
  dialog.querySelector('#confirm-text').textContent = text;
  dialog.querySelector('#confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
    dialog.showModal();
  });
}

export class NamespaceTable {
  /**
   * `onBrowse(namespace)` lists a namespace's keys; `onCleared(namespace)`
   * runs after a clear, so the rest of the page can refresh.
   */
  constructor({ table, result, dialog, onBrowse, onCleared }) {
    this.table = table;
    this.body = table.tBodies[0];
    this.result = result;
    this.dialog = dialog;
    this.onBrowse = onBrowse;
    this.onCleared = onCleared;
    this.rows = null;
    this.sort = { column: 'name', direction: 'ascending' };
    this.rendered = '';
    table.tHead.addEventListener('click', (event) => {
      const header = event.target.closest('th[data-sort]');
      if (header) this.sortBy(header.dataset.sort);
    });
    this.body.addEventListener('click', (event) => this.onAction(event));
  }

  update(stats) {
    this.rows = rowsFromStats(stats);
    this.render();
  }

  /** Shows why there is nothing to list (e.g. the token may not read /stats). */
  showMessage(message) {
    this.rows = null;
    this.rendered = '';
    const row = document.createElement('tr');
    row.className = 'empty';
    const td = cell('td', message);
    td.colSpan = 7;
    row.append(td);
    this.body.replaceChildren(row);
  }

  sortBy(column) {
    const same = this.sort.column === column;
    const direction = same
      ? (this.sort.direction === 'ascending' ? 'descending' : 'ascending')
      : (NUMERIC.has(column) ? 'descending' : 'ascending');
    this.sort = { column, direction };
    for (const header of this.table.tHead.querySelectorAll('th[data-sort]')) {
      if (header.dataset.sort === column) header.setAttribute('aria-sort', direction);
      else header.removeAttribute('aria-sort');
    }
    this.render();
  }

  render() {
    if (!this.rows) return;
    const rows = [...this.rows].sort(compareRows(this.sort.column, this.sort.direction));
    // Rebuilding the rows every 2 s would make a screen reader re-read them
    // and move the keyboard focus: only rebuild when something changed.
    const signature = JSON.stringify(rows);
    if (signature === this.rendered) return;
    this.rendered = signature;

    const focused = this.body.contains(document.activeElement) ? document.activeElement.dataset : null;
    this.body.replaceChildren(...rows.map((row) => this.renderRow(row)));
    if (focused?.action) {
      const selector = `button[data-action="${focused.action}"][data-namespace="${CSS.escape(focused.namespace)}"]`;
      (this.body.querySelector(selector) || this.table.closest('.table-wrap')).focus();
    }
  }

  renderRow(row) {
    const tr = document.createElement('tr');
    tr.dataset.namespace = row.namespace ?? '';
    if (row.namespace === null) tr.className = 'default-namespace';
    const name = cell('th', row.label);
    name.scope = 'row';
    const actions = cell('td', '', 'actions');
    actions.append(actionButton('Browse', 'browse', row.namespace, `Browse the keys of ${row.label}`, 'secondary'));
    // The default namespace has no name to clear it by.
    if (row.namespace !== null) {
      actions.append(actionButton('Clear', 'clear', row.namespace, `Clear namespace ${row.label}`, 'danger'));
    }
    tr.append(
      name,
      cell('td', formatCount(row.total_keys), 'num keys', 'Keys'),
      cell('td', formatBytes(row.used_bytes), 'num', 'Memory'),
      cell('td', formatCount(row.cache_hits), 'num', 'Hits'),
      cell('td', formatCount(row.cache_misses), 'num', 'Misses'),
      cell('td', formatPercent(row.hit_rate), 'num', 'Hit rate'),
      actions,
    );
    return tr;
  }

  onAction(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const namespace = button.dataset.namespace || null;
    if (button.dataset.action === 'browse') this.onBrowse(namespace);
    if (button.dataset.action === 'clear') this.clear(namespace);
  }

  async clear(namespace) {
    const row = this.rows?.find((r) => r.namespace === namespace);
    const count = row ? `its ${formatCount(row.total_keys)} key${row.total_keys === 1 ? '' : 's'}` : 'every key';
    const confirmed = await confirmInDialog(
      this.dialog,
      `Clear namespace ${namespace}?`,
      `This deletes ${count} for good. Other namespaces are not touched.`,
      `Clear ${namespace}`,
    );
    if (!confirmed) {
      this.result.textContent = `Nothing cleared: ${namespace} keeps its keys.`;
      return;
    }
    try {
      const answer = await api.clearNamespace(namespace);
      const n = answer.keys_deleted;
      this.result.textContent = `Cleared ${answer.namespace}: ${formatCount(n)} key${n === 1 ? '' : 's'} deleted.`;
      this.result.classList.remove('error');
      this.onCleared(namespace);
    } catch (error) {
      this.result.textContent = `Could not clear ${namespace}: ${describeError(error)}`;
      this.result.classList.add('error');
    }
  }
}
