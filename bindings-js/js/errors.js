// The error classes, and the one table that maps the core's error kinds to them.
import { KINDS } from './names.js';

function describeRetryAfter(retryAfter) {
  return retryAfter === undefined || Number.isNaN(retryAfter) ? '' : `; retry after ${Math.round(retryAfter * 1000) / 1000} ms`;
}

function describeCause(cause) {
  return cause instanceof Error ? `: ${cause.message}` : '';
}

/**
 * The base of every error tripwire raises. `code` is the kind ("circuitOpen", ...),
 * `retryAfter` the ms after which the same call could pass (when known), `attempts` the
 * attempts made (the first included; 0 when refused before any).
 */
export class TripwireError extends Error {
  constructor(message, options = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = options.code ?? 'tripwire';
    this.retryAfter = Number.isNaN(options.retryAfter) ? undefined : options.retryAfter;
    this.attempts = options.attempts ?? 0;
  }
}

/** The circuit breaker refused the call (open, forced open, or every half-open trial taken). */
export class CircuitOpenError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? 'circuit breaker is open' + describeRetryAfter(options.retryAfter), { ...options, code: 'circuitOpen' });
  }
}

/** The bulkhead had no free slot and no queue place. */
export class BulkheadFullError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? 'bulkhead is full', { ...options, code: 'bulkheadFull' });
  }
}

/** The call waited in the bulkhead queue longer than `maxWait` (or its deadline allowed). */
export class QueueTimeoutError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? 'timed out waiting in the bulkhead queue', { ...options, code: 'queueTimeout' });
  }
}

/** A rate limit, or a server's Retry-After pushback, refused the call. */
export class RateLimitedError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? 'rate limited' + describeRetryAfter(options.retryAfter), { ...options, code: 'rateLimited' });
  }
}

/** An attempt ran past its per-attempt timeout (its signal was aborted with this error). */
export class TimeoutError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? 'attempt timed out', { ...options, code: 'timeout' });
  }
}

/** Every allowed attempt failed: `attempts` counts them, `cause` is the last attempt's error. */
export class RetriesExhaustedError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? `retries exhausted after ${options.attempts ?? 0} attempts` + describeCause(options.cause), {
      ...options,
      code: 'retriesExhausted',
    });
  }
}

/** The shared retry budget refused a retry; `cause` is the last attempt's error. */
export class BudgetExhaustedError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? 'retry budget exhausted' + describeCause(options.cause), { ...options, code: 'budgetExhausted' });
  }
}

/** The call's deadline passed, or the next retry could not start before it. */
export class DeadlineExceededError extends TripwireError {
  constructor(message, options = {}) {
    super(message ?? 'deadline exceeded' + describeCause(options.cause), { ...options, code: 'deadlineExceeded' });
  }
}

/**
 * A refused configuration. `issues` lists every problem as `{path, reason}`; the message is
 * `path: reason` for each (e.g. `retry.maxRetrys: unknown field ...`), `path` is the first's.
 */
export class ConfigError extends TripwireError {
  constructor(message, issues = [{ path: '', reason: message }]) {
    super(message, { code: 'invalidConfig' });
    this.issues = issues;
    this.path = issues.length > 0 ? issues[0].path : '';
  }
}

// The mapping table: every kind the core can fail a call with, and nothing else.
const CLASSES = {
  circuitOpen: CircuitOpenError,
  bulkheadFull: BulkheadFullError,
  queueTimeout: QueueTimeoutError,
  rateLimited: RateLimitedError,
  timeout: TimeoutError,
  retriesExhausted: RetriesExhaustedError,
  budgetExhausted: BudgetExhaustedError,
  deadlineExceeded: DeadlineExceededError,
  failure: null, // the function's own error, re-raised unchanged
  invalidConfig: ConfigError,
};
for (const kind of KINDS.slice(1)) {
  if (!(kind in CLASSES)) throw new Error(`tripwire: the core reports error kind "${kind}", which this build does not map`);
}

/** The error for a call that failed with `kind` (any kind but "failure" and "invalidConfig"). */
export function errorOf(kind, options) {
  const cls = CLASSES[kind];
  if (cls === null || cls === ConfigError) throw new Error(`tripwire: no call error for kind "${kind}"`);
  return new cls(undefined, options);
}

/** Run `build`, turning a config error thrown by the wasm side into a ConfigError. */
export function native(build) {
  try {
    return build();
  } catch (e) {
    throw fromNative(e);
  }
}

/** A ConfigError for a config error object thrown by the wasm side; anything else as is. */
export function fromNative(e) {
  if (e instanceof Error && e.code === 'invalidConfig' && Array.isArray(e.issues)) {
    return new ConfigError(e.message, e.issues.map(({ path, reason }) => ({ path, reason })));
  }
  return e;
}

/** The error for using an object after `dispose()`. */
export function disposedError(what) {
  const e = new Error(`tripwire: this ${what} was disposed; create a new one`);
  e.code = 'ERR_TRIPWIRE_DISPOSED';
  return e;
}

function configIssue(path, reason) {
  const message = path === '' ? reason : `${path}: ${reason}`;
  return new ConfigError(message, [{ path, reason }]);
}

function joinPath(prefix, key) {
  if (typeof key === 'number') return `${prefix}[${key}]`;
  return prefix === '' ? key : `${prefix}.${key}`;
}

// A copy of a config object holding exactly what its JSON would: properties set to undefined
// are left out (JSON.stringify drops them too, so they mean "not set", i.e. the default), and
// values JSON cannot hold are refused by path instead of turning into null (which, for a
// timeout, would silently mean "none").
function jsonShaped(value, path) {
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw configIssue(path, `must be a finite number, got ${value}`);
      return value;
    case 'string':
    case 'boolean':
    case 'bigint':
      return value;
    case 'object': {
      if (value === null) return null;
      if (Array.isArray(value)) return value.map((v, i) => jsonShaped(v === undefined ? null : v, joinPath(path, i)));
      const copy = {};
      for (const [key, v] of Object.entries(value)) {
        if (v !== undefined) copy[key] = jsonShaped(v, joinPath(path, key));
      }
      return copy;
    }
    default:
      throw configIssue(path, `a config holds JSON values, not a ${typeof value}`);
  }
}

/**
 * A config given as an object, or as JSON text: text is parsed here, so a syntax error is a
 * ConfigError like any other refusal; an object is checked to hold only what JSON can.
 */
export function configInput(input) {
  if (typeof input !== 'string') return jsonShaped(input, '');
  try {
    return JSON.parse(input);
  } catch (e) {
    throw configIssue('', `invalid JSON: ${e.message}`);
  }
}

for (const cls of [
  TripwireError,
  CircuitOpenError,
  BulkheadFullError,
  QueueTimeoutError,
  RateLimitedError,
  TimeoutError,
  RetriesExhaustedError,
  BudgetExhaustedError,
  DeadlineExceededError,
  ConfigError,
]) {
  // `name` on the prototype: stack traces and `err.name` say which error it is.
  Object.defineProperty(cls.prototype, 'name', { value: cls.name, writable: true, configurable: true });
}
