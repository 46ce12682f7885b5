// The one way the UI talks to the local endpoint: every call carries `Authorization: Bearer <token>`.
// The token comes from pywebview's bridge (window.pywebview.api.get_token()) or, in a plain browser,
// from the operator pasting it; it is kept in sessionStorage only and never put in a URL.

const STORAGE_KEY = 'cloudops.token';
let token = null;

export class ApiError extends Error {
  constructor(status, message, details = []) {
    super(message);
    this.status = status;
    this.details = details;
  }
}

function bridge() {
  const api = window.pywebview && window.pywebview.api;
  return api && typeof api.get_token === 'function' ? api : null;
}

/** True inside the desktop app's windows (pywebview's JS bridge is there). */
export function inDesktop() {
  return bridge() !== null;
}

/** The token from pywebview, waiting for its `pywebviewready` event up to `waitMs`; null outside it. */
export function bridgeToken(waitMs) {
  return new Promise(resolve => {
    const ask = async () => {
      try {
        const value = await bridge().get_token();
        resolve(typeof value === 'string' && value ? value : null);
      } catch {
        resolve(null);
      }
    };
    if (bridge()) { ask(); return; }
    const timer = setTimeout(() => resolve(null), waitMs);
    window.addEventListener('pywebviewready', () => {
      clearTimeout(timer);
      if (bridge()) ask(); else resolve(null);
    }, {once: true});
  });
}

export function storedToken() {
  try { return sessionStorage.getItem(STORAGE_KEY); } catch { return null; }
}

/** Use `value` for every call; `remember` keeps a pasted token for this tab's session only. */
export function setToken(value, remember = false) {
  token = value;
  if (remember) {
    try { sessionStorage.setItem(STORAGE_KEY, value); } catch { /* private mode: memory only */ }
  }
}

export function forgetToken() {
  token = null;
  try { sessionStorage.removeItem(STORAGE_KEY); } catch { /* nothing stored */ }
}

export function hasToken() {
  return Boolean(token);
}

/** Fetch JSON from the endpoint. Throws ApiError with the endpoint's message and field details. */
export async function api(path, {method = 'GET', body, signal} = {}) {
  const headers = {Authorization: `Bearer ${token || ''}`, Accept: 'application/json'};
  const init = {method, headers, signal, cache: 'no-store', credentials: 'omit', redirect: 'error'};
  if (body !== undefined || method !== 'GET') {
    // Every state-changing call is JSON (the endpoint refuses other content types: CSRF).
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'the local endpoint is not answering (is CloudOps running?)');
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.status === 401) {
    forgetToken();
    window.dispatchEvent(new CustomEvent('cloudops:unauthorized'));
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`, (data && data.details) || []);
  }
  return data;
}

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') out.set(k, String(v));
  }
  const text = out.toString();
  return text ? `?${text}` : '';
}
