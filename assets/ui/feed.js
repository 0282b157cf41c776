// The live feed of the namespace being browsed: `GET /watch`, read as
// server-sent events, newest first, the last 50 kept.
//
// Why fetch() and not EventSource: EventSource cannot send the
// `Authorization` header, and a token in the URL would end in logs. So the
// stream is read here, and on a broken connection opened again with
// `Last-Event-ID`, as EventSource would, so no change is missed.

import { getToken } from './api.js';
import { namespaceLabel } from './format.js';

const KEPT = 50;
const RETRY_MS = 2000;

export class ChangeFeed {
  constructor({ status, list }) {
    this.status = status;
    this.list = list;
    this.controller = null;
  }

  /** Follows `namespace`'s changes (of keys starting with `prefix`), instead of any other. */
  follow(namespace, prefix) {
    this.stop();
    this.list.replaceChildren();
    const controller = new AbortController();
    this.controller = controller;
    this.run(controller, namespace, prefix || '');
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async run(controller, namespace, prefix) {
    const query = new URLSearchParams();
    if (namespace) query.set('ns', namespace);
    if (prefix) query.set('prefix', prefix);
    const label = namespaceLabel(namespace);
    let lastId = null;
    while (!controller.signal.aborted) {
      const headers = { Accept: 'text/event-stream' };
      const token = getToken();
      if (token) headers.Authorization = `Bearer ${token}`;
      if (lastId) headers['Last-Event-ID'] = lastId;
      try {
        const response = await fetch(`/watch?${query}`, { headers, cache: 'no-store', signal: controller.signal });
        if (!response.ok) {
          let detail = `${response.status}`;
          try { detail = (await response.json()).detail; } catch { /* not JSON */ }
          this.status.textContent = `Live changes of ${label} unavailable: ${detail}`;
          if (response.status === 401 || response.status === 403) return;
        } else {
          this.status.textContent = `Live changes of ${label}${prefix ? ` starting with “${prefix}”` : ''}:`;
          lastId = await this.read(response.body, lastId);
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        this.status.textContent = `Live changes of ${label}: connection lost (${error.message}), reconnecting…`;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  /** Reads events until the stream ends; returns the last event's id. */
  async read(body, lastId) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return lastId;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (!data) continue; // a heartbeat
        const event = JSON.parse(data.slice(6));
        if (event.id) lastId = event.id;
        this.show(event);
      }
    }
  }

  show(event) {
    if (event.op === 'ready') return;
    const item = document.createElement('li');
    item.className = `change change-${event.op}`;
    const op = document.createElement('span');
    op.className = 'change-op';
    op.textContent = event.op;
    item.append(op);
    const text = event.op === 'reset'
      ? ' changes were missed: list the keys again'
      : ` ${event.key ?? '(every key)'}${event.value !== undefined ? ` = ${JSON.stringify(event.value)}` : ''}`;
    item.append(document.createTextNode(text));
    item.title = `id ${event.id}`;
    this.list.prepend(item);
    while (this.list.children.length > KEPT) this.list.lastElementChild.remove();
  }
}
