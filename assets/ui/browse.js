// The key browser: a namespace's keys in key order, one page at a time,
// through `GET /keys` and its cursor.
//
// The server only knows "the page after this cursor", so going back is
// done here: the cursor that opened each page seen so far is kept, and
// Previous asks again with the one before.

import { api, ApiError, describeError } from './api.js';
import { formatCount, namespaceLabel } from './format.js';

export class KeyBrowser {
  /** `onPick(namespace, key)` runs when a listed key is chosen. */
  /** `onOpen(namespace, prefix)` runs when a namespace is listed afresh. */
  constructor({ form, summary, list, prev, next, page, onPick, onOpen = () => {} }) {
    this.onOpen = onOpen;
    this.form = form;
    this.summary = summary;
    this.list = list;
    this.prevButton = prev;
    this.nextButton = next;
    this.pageLabel = page;
    this.onPick = onPick;
    this.query = null;
    /** cursors[i] opened page i; page 0 has none. */
    this.cursors = [null];
    this.page = 0;
    this.nextCursor = null;
    /** Answers can arrive out of order: only the latest request's is shown. */
    this.sequence = 0;

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.open(this.readForm());
    });
    prev.addEventListener('click', () => this.turn(-1));
    next.addEventListener('click', () => this.turn(1));
    list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-key]');
      if (button) this.onPick(this.query.namespace, button.dataset.key);
    });
  }

  readForm() {
    const { namespace, prefix, limit } = this.form.elements;
    return {
      namespace: namespace.value.trim() || null,
      prefix: prefix.value,
      limit: Number(limit.value),
    };
  }

  /** Lists a namespace from its first page (from the table's Browse button). */
  browse(namespace) {
    this.form.elements.namespace.value = namespace ?? '';
    this.form.elements.prefix.value = '';
    this.open(this.readForm());
    this.form.closest('section').scrollIntoView({ block: 'nearest' });
  }

  open(query) {
    if (!this.query || this.query.namespace !== query.namespace || this.query.prefix !== query.prefix) {
      this.onOpen(query.namespace, query.prefix);
    }
    this.query = query;
    this.cursors = [null];
    this.page = 0;
    return this.load();
  }

  /** Shows the current page again, e.g. after its namespace was cleared. */
  reloadIf(namespace) {
    if (this.query && this.query.namespace === namespace) return this.open(this.query);
    return Promise.resolve();
  }

  turn(step) {
    if (step > 0) {
      if (this.nextCursor === null) return;
      this.cursors[this.page + 1] = this.nextCursor;
    } else if (this.page === 0) {
      return;
    }
    this.page += step;
    const clicked = step > 0 ? this.nextButton : this.prevButton;
    this.load().then(() => {
      // The last (or first) page disables the button just used: keep the
      // keyboard focus in the pager rather than losing it to the page.
      if (clicked.disabled && document.activeElement === document.body) {
        (step > 0 ? this.prevButton : this.nextButton).focus();
      }
    });
  }

  async load() {
    const sequence = ++this.sequence;
    const { namespace, prefix, limit } = this.query;
    this.summary.textContent = `Loading the keys of ${namespaceLabel(namespace)}…`;
    try {
      const answer = await api.keys({ namespace, prefix, limit, cursor: this.cursors[this.page] });
      if (sequence !== this.sequence) return;
      this.nextCursor = answer.cursor ?? null;
      this.render(answer.keys || []);
    } catch (error) {
      if (sequence !== this.sequence) return;
      this.nextCursor = null;
      this.render([]);
      this.summary.textContent = error instanceof ApiError && error.status === 404
        ? `This server cannot list keys (GET /keys answered 404: ${error.detail}).`
        : `Could not list the keys of ${namespaceLabel(namespace)}: ${describeError(error)}`;
      this.summary.classList.add('error');
    }
  }

  render(keys) {
    const { namespace, prefix, limit } = this.query;
    this.list.replaceChildren(...keys.map((key) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'link';
      button.dataset.key = key;
      button.textContent = key;
      button.setAttribute('aria-label', `Get ${key}`);
      item.append(button);
      return item;
    }));
    const first = this.page * limit + 1;
    const filter = prefix ? ` starting with “${prefix}”` : '';
    this.summary.classList.remove('error');
    this.summary.textContent = keys.length === 0
      ? `${namespaceLabel(namespace)}: no keys${filter}${this.page > 0 ? ' on this page' : ''}.`
      : `${namespaceLabel(namespace)}: keys ${formatCount(first)}–${formatCount(first + keys.length - 1)}${filter}${this.nextCursor ? '' : ' (the last)'}.`;
    this.pageLabel.textContent = `Page ${this.page + 1}`;
    this.prevButton.disabled = this.page === 0;
    this.nextButton.disabled = this.nextCursor === null;
  }
}
