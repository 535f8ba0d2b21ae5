// The JSON API client. The session lives in an HttpOnly cookie the script
// never sees; state-changing calls carry the CSRF token from login or
// GET /api/me in `X-CSRF-Token`. No credential is stored by the UI.

let csrf = null;
const expiredHandlers = new Set();

/** Sets (or clears) the CSRF token for later calls. */
export function setCsrf(token) {
  csrf = token || null;
}

/** Calls `fn()` whenever a call finds the session gone (401). */
export function onSessionExpired(fn) {
  expiredHandlers.add(fn);
}

/** An API error: HTTP status, the API's error kind and its detail text. */
export class ApiError extends Error {
  constructor(status, kind, detail, body) {
    super(detail || kind || `HTTP ${status}`);
    this.status = status;
    this.kind = kind;
    this.body = body;
  }
}

/**
 * `api("GET", "/api/cameras")` → parsed JSON (null for 204).
 * Throws ApiError; a 401 (outside login) also tells the session handlers.
 */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf && !["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = csrf;
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal: opts.signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server cannot be reached. Check the network connection.");
  }
  const text = r.status === 204 ? "" : await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!r.ok) {
    const err = new ApiError(r.status, data && data.error, (data && data.detail) || r.statusText, data);
    if (r.status === 401 && !opts.noExpiry) for (const fn of expiredHandlers) fn(err);
    if (r.status === 429) err.retryAfter = Number(r.headers.get("Retry-After")) || null;
    throw err;
  }
  return data;
}

/** `/api/...?k=v` with empty values left out. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Path segment for an id (ids are plain, but never trust that). */
export const seg = (s) => encodeURIComponent(s);
