// What a failure means: the default retry predicate (DESIGN.md §3.2) and Retry-After hints.

const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']);

// fetch() rejects with a TypeError on network failure: "fetch failed" (Node), "Failed to fetch"
// (Chromium), "NetworkError when attempting to fetch resource." (Firefox), "Load failed" (Safari).
const FETCH_NETWORK_ERROR = /fetch|network|load failed/i;

function statusOf(error) {
  const { status, statusCode } = error;
  if (typeof status === 'number') return status;
  if (typeof statusCode === 'number') return statusCode;
  const response = error.response;
  if (response !== null && typeof response === 'object' && typeof response.status === 'number') return response.status;
  return undefined;
}

/**
 * The default predicate: `true` (a retryable failure) for 5xx and 429 statuses (`status`,
 * `statusCode` or `response.status`), network error codes (ECONNREFUSED, ECONNRESET, ETIMEDOUT,
 * EPIPE, EAI_AGAIN, on the error or its `cause`) and fetch's network TypeError; `"ignore"` for
 * other 4xx statuses (the caller's fault: not retried, not counted by the breaker); `false`
 * (a failure, not retried) for anything else.
 */
export function defaultRetryable(error) {
  if (error === null || (typeof error !== 'object' && typeof error !== 'function')) return false;
  const status = statusOf(error);
  if (status !== undefined) {
    if (status === 429 || status >= 500) return true;
    return status >= 400 ? 'ignore' : false;
  }
  const code = error.code ?? error.cause?.code;
  if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true;
  return error instanceof TypeError && FETCH_NETWORK_ERROR.test(error.message);
}

/** Whether `value` is a fetch `Response` (where the platform has one). */
export function isResponse(value) {
  return typeof Response === 'function' && value instanceof Response;
}

function header(source) {
  const headers = source?.headers;
  if (headers === null || typeof headers !== 'object') return undefined;
  if (typeof headers.get === 'function') return headers.get('retry-after') ?? undefined;
  return headers['retry-after'] ?? headers['Retry-After'];
}

/**
 * A `Retry-After` header value as ms: delay-seconds, or an HTTP date relative to the wall
 * clock `nowMs`. NaN when it is neither.
 */
export function parseRetryAfter(value, nowMs = Date.now()) {
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? NaN : Math.max(0, at - nowMs);
}

/**
 * A failure's Retry-After hint in ms (NaN for none): the thrown value's `retryAfter` (ms), or
 * the `Retry-After` header of a thrown or returned `Response` (or of `error.response`).
 */
export function retryAfterOf(error) {
  if (error === null || typeof error !== 'object') return NaN;
  const ms = error.retryAfter;
  if (typeof ms === 'number' && ms >= 0) return ms;
  const value = header(error) ?? header(error.response);
  return value === undefined ? NaN : parseRetryAfter(value);
}
