// fetch wrapper for /api/v1: token header, JSON bodies, errors as ApiError, one token prompt.
import { byId } from './dom.js';
import { getToken, setToken } from './state.js';

export const API = '/api/v1';

/** An HTTP error with the daemon's detail message and per-field validation errors. */
export class ApiError extends Error {
  constructor(status, detail, errors = [], retryAfter = null) {
    super(detail);
    this.status = status;
    this.errors = errors;
    this.retryAfter = retryAfter;
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

/** Call the API: api('/queue'), api('/generate', {method: 'POST', body: {...}}). */
export async function api(path, { method = 'GET', body, form, headers = {}, signal } = {}, retried = false) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, signal };
  const token = getToken();
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'The daemon is not reachable. Is it running? The page reconnects by itself.');
  }
  if (res.status === 401) {
    // A stored token that stopped working is asked for again, with a hint.
    await askToken(Boolean(token) || retried);
    return api(path, { method, body, form, headers, signal }, true);
  }
  if (res.status === 204) return null;
  const isJson = (res.headers.get('content-type') || '').includes('json');
  const data = isJson ? await res.json() : await res.text();
  if (!res.ok) {
    const detail = (isJson && data.detail) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, detail, (isJson && data.errors) || [], res.headers.get('Retry-After'));
  }
  return data;
}

/** A URL usable where headers cannot be set (img src, EventSource): adds ?token=. */
export function withToken(url) {
  const token = getToken();
  if (!token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/** A binary answer (an image) as a Blob, with the token header; errors as ApiError. */
export async function fetchBlob(url, init = {}) {
  const headers = { ...(init.headers || {}) };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { ...init, headers });
  if (!res.ok) {
    const body = (res.headers.get('content-type') || '').includes('json') ? await res.json() : {};
    throw new ApiError(res.status, body.detail || `${res.status} ${res.statusText}`, body.errors || []);
  }
  return res.blob();
}
