// Every call to the PyKV API goes through `request`: it adds the token,
// parses the JSON answer, and turns a refusal into an ApiError carrying the
// status and the server's `detail`, so the views only show messages.

const TOKEN_KEY = 'pykv.console.token';

/** The token typed into the token field, or '' (the server is open). */
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    // Storage can be disabled by the browser; the console then works
    // without remembering the token across reloads.
    return memoryToken;
  }
}

let memoryToken = '';

/** Keeps the token for this tab only: sessionStorage dies with the tab. */
export function setToken(token) {
  memoryToken = token;
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // See getToken.
  }
}

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(detail);
    this.name = 'ApiError';
    /** The path asked for, without its query: which view failed. */
    this.path = path;
    /** HTTP status, or 0 when the server could not be reached. */
    this.status = status;
    this.detail = detail;
  }

  /** 401 (no or unknown token) or 403 (the token may not do this). */
  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

const authListeners = new Set();

/** Calls `listener(error)` on every 401 or 403 answer, wherever it came from. */
export function onAuthError(listener) {
  authListeners.add(listener);
}

/**
 * `quiet`: a refusal is only the caller's business (an optional figure),
 * and does not raise the page's token banner.
 */
async function request(method, path, body, { quiet = false } = {}) {
  const route = path.split('?')[0];
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `cannot reach the server (${e.message}); is it running?`, route);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = undefined;
  }
  if (!response.ok) {
    const detail = data && typeof data.detail === 'string'
      ? data.detail
      : `${response.status} ${response.statusText}`.trim();
    const error = new ApiError(response.status, detail, route);
    if (error.isAuth && !quiet) authListeners.forEach((listener) => listener(error));
    throw error;
  }
  if (data === undefined) throw new ApiError(response.status, 'the answer is not JSON', route);
  return data;
}

/** `?ns=NS&…` from the parameters that are set; the default namespace has none. */
function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** A key as one path segment: `/`, `?`, `#`, `%`, spaces and Unicode escaped. */
function keyPath(key) {
  return encodeURIComponent(key);
}

export const api = {
  set(namespace, key, value, ttl) {
    const body = { key, value };
    if (ttl !== null && ttl !== undefined) body.ttl = ttl;
    if (namespace) body.namespace = namespace;
    return request('POST', '/set', body);
  },
  get(namespace, key) {
    return request('GET', `/get/${keyPath(key)}${query({ ns: namespace })}`);
  },
  delete(namespace, key) {
    return request('DELETE', `/delete/${keyPath(key)}${query({ ns: namespace })}`);
  },
  namespaces() {
    return request('GET', '/namespaces');
  },
  clearNamespace(namespace) {
    return request('DELETE', `/namespaces/${encodeURIComponent(namespace)}`);
  },
  stats() {
    return request('GET', '/stats');
  },
  /** Admin tokens only: tenants' consoles chart from `/stats` instead. */
  performance() {
    return request('GET', '/performance', undefined, { quiet: true });
  },
  /** One page of keys in key order; pass the answer's `cursor` for the next. */
  keys({ namespace, prefix, cursor, limit }) {
    return request('GET', `/keys${query({ ns: namespace, prefix, cursor, limit })}`);
  },
};

/**
 * What to tell the user about a failed call: the server's detail, and for
 * 401/403 where to fix it.
 */
export function describeError(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  if (error.status === 401) {
    return `${error.detail} (401). Enter a valid API token in the “API token” field at the top of the page.`;
  }
  if (error.status === 403) {
    return `${error.detail} (403). Use a token allowed here in the “API token” field at the top of the page.`;
  }
  return error.status ? `${error.detail} (${error.status})` : error.detail;
}
