// The API client: every call carries the bearer token kept in this tab's session storage.

const TOKEN_KEY = 'lwota.token';
export const API = '/api/v1';

/** The signed-in token, kept in session storage only: it goes when the tab closes. */
export const session = {
  /** @returns {string} */
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ''; },
  /** @param {string} t */
  set(t) { sessionStorage.setItem(TOKEN_KEY, t); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

/** APIError is a non-2xx answer: its status, the API's error code and message. */
export class APIError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    /** @type {{field: string, message: string}[]} the fields a refused campaign got wrong */
    this.details = [];
  }
}

/**
 * call does one API request and returns the decoded JSON answer. A 401 also tells the page
 * (event "lwota:unauthorized"), which sends the user back to the sign-in form.
 * @param {string} path below /api/v1, with its query
 * @param {{method?: string, body?: any, signal?: AbortSignal, token?: string}} [opts]
 * @returns {Promise<any>}
 */
export async function call(path, opts = {}) {
  const {method = 'GET', body, signal, token = session.token} = opts;
  /** @type {Record<string, string>} */
  const headers = {Accept: 'application/json', Authorization: 'Bearer ' + token};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(API + path, {method, headers, signal, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new APIError(0, 'network', 'lwota cannot be reached: ' + (e instanceof Error ? e.message : String(e)));
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new APIError(res.status, e.code || 'http_' + res.status, e.message || res.statusText || 'request failed');
    if (Array.isArray(e.details)) err.details = e.details;
    if (res.status === 401 && opts.token === undefined) {
      window.dispatchEvent(new CustomEvent('lwota:unauthorized', {detail: err}));
    }
    throw err;
  }
  return data;
}

/**
 * query builds "?a=1&b=2" from the non-empty values of params ("" when none is set).
 * @param {Record<string, any>} params
 */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/**
 * errorText is an error in words, for the page.
 * @param {unknown} e
 */
export function errorText(e) {
  if (e instanceof APIError) return e.message + (e.status ? ' (' + e.status + ' ' + e.code + ')' : '');
  return e instanceof Error ? e.message : String(e);
}

/** @param {string} s a path segment: an endpoint name or an id */
export const seg = (s) => encodeURIComponent(s);
