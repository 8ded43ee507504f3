// Fetch the JSON API; failures become ApiError carrying the API's message (never swallowed).

export class ApiError extends Error {
  constructor(status, body, url) {
    const err = (body && body.error) || {};
    const detail = body && body.detail ? JSON.stringify(body.detail) : '';
    super(err.message || detail || `request failed with HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.parameter = err.parameter || null;
    this.position = Number.isInteger(err.position) ? err.position : null;
    this.url = url ? String(url) : '';
  }
}

export function apiUrl(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
  }
  return url;
}

export async function getJSON(path, params = {}) {
  const url = apiUrl(path, params);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch (exc) {
    throw new ApiError(0, { error: { message: `cannot reach the llmlens server (${exc.message})` } }, url);
  }
  let body = null;
  try { body = await response.json(); } catch { /* a non-JSON body: reported by status below */ }
  if (!response.ok) throw new ApiError(response.status, body, url);
  return body;
}

/** POST to the JSON API (no body; parameters in the query string), as getJSON. */
export async function postJSON(path, params = {}) {
  const url = apiUrl(path, params);
  let response;
  try {
    response = await fetch(url, { method: 'POST', headers: { Accept: 'application/json' } });
  } catch (exc) {
    throw new ApiError(0, { error: { message: `cannot reach the llmlens server (${exc.message})` } }, url);
  }
  let body = null;
  try { body = await response.json(); } catch { /* a non-JSON body: reported by status below */ }
  if (!response.ok) throw new ApiError(response.status, body, url);
  return body;
}
