// fetch wrapper for /api/v1: token header, JSON bodies, a time limit, errors as ApiError, one
// token prompt.
import { byId } from './dom.js';
import { getToken, setToken } from './state.js';

export const API = '/api/v1';

/** An HTTP error with the daemon's detail message and per-field validation errors. */
export class ApiError extends Error {
  constructor(status, detail, errors = [], retryAfter = null, timedOut = false) {
    super(detail);
    this.status = status;
    this.errors = errors;
    this.retryAfter = retryAfter;
    // Status 0: no answer at all, the daemon unreachable or (timedOut) too slow.
    this.timedOut = timedOut;
  }
}

let tokenPrompt = null;

/** Ask the user for the token once; concurrent 401s share the same dialog. */
export function askToken(rejected = false) {
  if (tokenPrompt) return tokenPrompt;
  const dialog = byId('token-dialog');
  const input = byId('token-input');
  byId('token-error').hidden = !rejected;
  input.value = '';
  tokenPrompt = new Promise((resolve) => {
    const form = byId('token-form');
    const done = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      form.removeEventListener('submit', done);
      setToken(token);
      dialog.close();
      tokenPrompt = null;
      resolve(token);
    };
    form.addEventListener('submit', done);
    // Escape would leave the page unusable without a token, so the dialog stays.
    dialog.oncancel = (e) => e.preventDefault();
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

// A request that gets no answer in this long fails with a message instead of waiting for ever
// (tests shorten it). Long actions pass their own `timeout` (null: none).
export const TIMEOUT_MS = window.IMPASTO_API_TIMEOUT_MS || 30_000;
export const UNREACHABLE = 'The daemon is not reachable. Is it running? The page reconnects by itself.';

/** The message of a request that got no answer within `ms`. */
export function timeoutMessage(ms) {
  return `The daemon did not answer within ${Math.round(ms / 1000)} s. It may be busy or stuck: `
    + 'try again, and check the System panel or the daemon\'s log if it keeps happening.';
}

/** fetch() that gives up after `timeout` ms (null: never); failures as ApiError status 0. */
export async function fetchWithin(url, init = {}, timeout = TIMEOUT_MS) {
  const signals = [init.signal, timeout ? AbortSignal.timeout(timeout) : null].filter(Boolean);
  // AbortSignal.any is recent (2023): without it a caller's own signal wins over the limit.
  const signal = signals.length > 1 && AbortSignal.any ? AbortSignal.any(signals) : signals[0];
  try {
    const res = await fetch(url, { ...init, signal });
    // The body can hang too: read it under the same signal.
    const body = await res.blob();
    return { res, body };
  } catch (err) {
    if (err.name === 'TimeoutError') throw new ApiError(0, timeoutMessage(timeout), [], null, true);
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, UNREACHABLE);
  }
}

/** Call the API: api('/queue'), api('/generate', {method: 'POST', body: {...}}). */
export async function api(path, { method = 'GET', body, form, headers = {}, signal, timeout = TIMEOUT_MS } = {}, retried = false) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, signal };
  const token = getToken();
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const { res, body: blob } = await fetchWithin(API + path, init, timeout);
  if (res.status === 401) {
    // A stored token that stopped working is asked for again, with a hint.
    await askToken(Boolean(token) || retried);
    return api(path, { method, body, form, headers, signal, timeout }, true);
  }
  if (res.status === 204) return null;
  const isJson = (res.headers.get('content-type') || '').includes('json');
  const text = await blob.text();
  let data = text;
  if (isJson) {
    try {
      data = JSON.parse(text);
    } catch {
      data = {};
    }
  }
  if (!res.ok) {
    const detail = (isJson && data.detail) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, detail, (isJson && data.errors) || [], res.headers.get('Retry-After'));
  }
  return data;
}

/** A URL usable where headers cannot be set (img src, WebSocket): adds ?token=. */
export function withToken(url) {
  const token = getToken();
  if (!token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/** A binary answer (an image) as a Blob, with the token header; errors as ApiError. */
export async function fetchBlob(url, init = {}, timeout = TIMEOUT_MS) {
  const headers = { ...(init.headers || {}) };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const { res, body } = await fetchWithin(url, { ...init, headers }, timeout);
  if (!res.ok) {
    let detail = {};
    if ((res.headers.get('content-type') || '').includes('json')) {
      try {
        detail = JSON.parse(await body.text());
      } catch {
        // Not JSON after all: the status says enough.
      }
    }
    throw new ApiError(res.status, detail.detail || `${res.status} ${res.statusText}`, detail.errors || []);
  }
  return body;
}
