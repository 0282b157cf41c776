// The key forms: set (with namespace, TTL and an optional JSON value), get
// and delete, each showing the server's answer or its error detail.

import { api, describeError } from './api.js';

/** URLs read `.` and `..` as directory steps: these keys cannot be addressed. */
const UNADDRESSABLE = new Set(['.', '..']);

/** An empty namespace field means the default namespace. */
function namespaceOf(input) {
  const value = input.value.trim();
  return value === '' ? null : value;
}

function where(namespace) {
  return namespace === null ? 'the default namespace' : `namespace ${namespace}`;
}

/** Thrown for input the form refuses before asking the server. */
class InputError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function parseTtl(input) {
  const text = input.value.trim();
  if (text === '') return null;
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new InputError(input, `TTL: a whole number of seconds from 1, got “${text}”; leave it empty for a key that never expires.`);
  }
  return Number(text);
}

function parseValue(input, asJson) {
  if (!asJson) return input.value;
  try {
    return JSON.parse(input.value);
  } catch (e) {
    throw new InputError(input, `Value: not valid JSON (${e.message}); untick “Value is JSON” to store it as text.`);
  }
}

function requireKey(input, forUrl) {
  const key = input.value;
  if (key === '') throw new InputError(input, 'Key: must not be empty.');
  if (forUrl && UNADDRESSABLE.has(key)) {
    throw new InputError(input, `Key: “${key}” cannot be read or deleted over HTTP (URLs read it as a directory step).`);
  }
  return key;
}

function describeValue(value) {
  if (typeof value === 'string') return { kind: 'string', text: value };
  return { kind: `JSON ${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value}`, text: JSON.stringify(value, null, 2) };
}

export class KeyForms {
  /** `onChange()` runs after a successful set or delete (to refresh the figures). */
  constructor({ setForm, getForm, deleteButton, result, onChange }) {
    this.setForm = setForm;
    this.getForm = getForm;
    this.result = result;
    this.onChange = onChange;
    this.fields = {
      setNs: setForm.elements.namespace,
      setKey: setForm.elements.key,
      setValue: setForm.elements.value,
      setJson: setForm.elements.json,
      setTtl: setForm.elements.ttl,
      getNs: getForm.elements.namespace,
      getKey: getForm.elements.key,
    };
    setForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.run('Set', () => this.set());
    });
    getForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.run('Get', () => this.get());
    });
    deleteButton.addEventListener('click', () => this.run('Delete', () => this.delete()));
  }

  async set() {
    const f = this.fields;
    const namespace = namespaceOf(f.setNs);
    const key = requireKey(f.setKey, false);
    const ttl = parseTtl(f.setTtl);
    const value = parseValue(f.setValue, f.setJson.checked);
    await api.set(namespace, key, value, ttl);
    this.onChange();
    const expiry = ttl === null ? 'never expires' : `expires in ${ttl} s`;
    return { title: `Stored “${key}” in ${where(namespace)} (${expiry}).` };
  }

  async get() {
    const namespace = namespaceOf(this.fields.getNs);
    const key = requireKey(this.fields.getKey, true);
    const answer = await api.get(namespace, key);
    const { kind, text } = describeValue(answer.value);
    return { title: `“${key}” in ${where(namespace)} (${kind}):`, body: text };
  }

  async delete() {
    const namespace = namespaceOf(this.fields.getNs);
    const key = requireKey(this.fields.getKey, true);
    await api.delete(namespace, key);
    this.onChange();
    return { title: `Deleted “${key}” from ${where(namespace)}.` };
  }

  /** Fills the get form with a key picked elsewhere (the key browser) and reads it. */
  show(namespace, key) {
    this.fields.getNs.value = namespace ?? '';
    this.fields.getKey.value = key;
    return this.run('Get', () => this.get());
  }

  async run(action, operation) {
    this.clearInvalid();
    try {
      const { title, body } = await operation();
      this.showResult(false, title, body);
    } catch (error) {
      if (error instanceof InputError) {
        error.field.setAttribute('aria-invalid', 'true');
        error.field.focus();
        this.showResult(true, `${action}: not sent.`, error.message);
      } else {
        this.showResult(true, `${action} failed.`, describeError(error));
      }
    }
  }

  clearInvalid() {
    for (const field of Object.values(this.fields)) field.removeAttribute('aria-invalid');
  }

  showResult(isError, title, body) {
    this.result.hidden = false;
    this.result.classList.toggle('error', isError);
    this.result.querySelector('.result-title').textContent = title;
    const pre = this.result.querySelector('pre');
    pre.textContent = body ?? '';
    pre.hidden = body === undefined || body === '';
  }
}
