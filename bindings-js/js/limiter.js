// RateLimiter and KeyedRateLimiter: `check(cost)` answers at once; `execute(fn)` waits out a
// reserved wait (`maxWait`) or rejects with a RateLimitedError.
import { raw } from './native.js';
import { out, TIME, RETRY_AFTER } from './out.js';
import { RateLimitedError, native, disposedError, configInput } from './errors.js';
import { clockOf, readClock } from './clock.js';
import { Emitter, POLICY_EVENTS, readEvent } from './emitter.js';
import { DISPOSE, randomSeed } from './lifecycle.js';

const DECISION = 3;
const ALLOWED = 0;
const WAIT = 1;
const EVENTS = 4;
const NEVER = new AbortController().signal;

function cost(n) {
  if (n === undefined) return 1;
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`cost must be a whole number >= 0, got ${String(n)}`);
  return n;
}

/**
 * A decision as the public API shapes it: `{allowed, retryAfter, wait}` in ms. `allowed` with
 * `wait > 0` means "go after waiting this long" (capacity is reserved: `maxWait`); a denial's
 * `retryAfter` is the shortest wait after which the same check passes (Infinity: never, the
 * cost exceeds the burst).
 */
function decision(code) {
  const o = out();
  switch (code & DECISION) {
    case ALLOWED:
      return { allowed: true, retryAfter: 0, wait: 0 };
    case WAIT:
      return { allowed: true, retryAfter: 0, wait: o[TIME] };
    default: {
      const retryAfter = o[RETRY_AFTER];
      return { allowed: false, retryAfter: Number.isNaN(retryAfter) ? Infinity : retryAfter, wait: 0 };
    }
  }
}

async function run(clock, d, fn, options) {
  const signal = options?.signal ?? undefined;
  if (!d.allowed) {
    throw new RateLimitedError(undefined, { retryAfter: d.retryAfter === Infinity ? undefined : d.retryAfter });
  }
  if (d.wait > 0) await clock.sleep(d.wait, signal);
  if (signal !== undefined && signal.aborted) throw signal.reason;
  return fn({ signal: signal ?? NEVER, attempt: 1 });
}

/** `new RateLimiter(config, {clock})`: one limit or a list (every limit must pass). */
export class RateLimiter extends Emitter {
  #raw;
  #clock;

  constructor(config, options = {}) {
    super(POLICY_EVENTS, (on) => this.#raw?.setListening(on));
    this.#clock = clockOf(options);
    this.#raw = native(() => new raw.RawLimiter(configInput(config)));
  }

  #live() {
    const l = this.#raw;
    if (l === null) throw disposedError('RateLimiter');
    return l;
  }

  /** Take `cost` (default 1) units now if the limit allows: `{allowed, retryAfter, wait}`. */
  check(n) {
    const l = this.#live();
    const code = l.check(readClock(this.#clock), cost(n));
    const d = decision(code);
    if (code & EVENTS) for (let c = l.nextEvent(); c !== 0; c = l.nextEvent()) this.emit(readEvent(c));
    return d;
  }

  /** Run `fn({signal, attempt})` when one unit is available (waiting out a reserved wait). */
  async execute(fn, options) {
    if (typeof fn !== 'function') throw new TypeError('execute(fn): fn must be a function');
    return run(this.#clock, this.check(1), fn, options);
  }

  /** Units the (first) limit would admit at once. */
  get available() {
    return this.#live().available(readClock(this.#clock));
  }

  /** Counters and gauges. */
  stats() {
    return this.#live().metrics();
  }

  /** Free the wasm memory now; any later use throws. */
  dispose() {
    const l = this.#raw;
    if (l === null) return;
    this.#raw = null;
    l.free();
  }

  [DISPOSE]() {
    this.dispose();
  }
}

/**
 * `new KeyedRateLimiter({limit, maxKeys, idleExpiry}, {clock})`: one limiter per key (user,
 * host...), memory bounded; a key that is limited is never evicted.
 */
export class KeyedRateLimiter extends Emitter {
  #raw;
  #clock;

  constructor(config, options = {}) {
    super(POLICY_EVENTS, (on) => this.#raw?.setListening(on));
    this.#clock = clockOf(options);
    const [hi, lo] = randomSeed();
    this.#raw = native(() => new raw.RawKeyedLimiter(configInput(config), hi, lo));
  }

  #live() {
    const l = this.#raw;
    if (l === null) throw disposedError('KeyedRateLimiter');
    return l;
  }

  /** Take `cost` (default 1) units for `key` now: `{allowed, retryAfter, wait}`. */
  check(key, n) {
    if (typeof key !== 'string') throw new TypeError('check(key): key must be a string');
    const l = this.#live();
    const code = l.check(key, readClock(this.#clock), cost(n));
    const d = decision(code);
    if (code & EVENTS) for (let c = l.nextEvent(); c !== 0; c = l.nextEvent()) this.emit(readEvent(c));
    return d;
  }

  /** Run `fn` when `key` has one unit available. */
  async execute(key, fn, options) {
    if (typeof fn !== 'function') throw new TypeError('execute(key, fn): fn must be a function');
    return run(this.#clock, this.check(key, 1), fn, options);
  }

  /** Keys held now. */
  get size() {
    return this.#live().keys();
  }

  /** Counters and gauges. */
  stats() {
    return this.#live().metrics();
  }

  /** Free the wasm memory now; any later use throws. */
  dispose() {
    const l = this.#raw;
    if (l === null) return;
    this.#raw = null;
    l.free();
  }

  [DISPOSE]() {
    this.dispose();
  }
}
