// tripwire/raw's SharedLimiter: the core's shared rate limiter, for hosts that drive the
// store themselves (the fleet workers, the conformance vectors). Requests and replies have the
// shapes of store.js.
import { raw } from './native.js';
import { out, TIME, KIND, RETRY_AFTER, TICKET } from './out.js';
import { native, disposedError, configInput } from './errors.js';
import { STATES } from './names.js';
import { Emitter, readEvent } from './emitter.js';
import { DISPOSE, randomSeed } from './lifecycle.js';
import { requestOf, encode, requireStore } from './store.js';

// Decision codes (bindings-js/src/store.rs).
const ALLOWED = 0;
const DENIED = 1;
const SEND = 2;
const DECISION = 3;
const EVENTS = 4;
/** Where a decision came from, by the code in `KIND`. */
const SOURCES = ['', 'store', 'fallback', 'cache'];
const STORE_EVENTS = Object.freeze(['storeStateChanged']);

function seedOf(seed) {
  if (seed === undefined || seed === null) return randomSeed();
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TypeError(`options.seed must be a whole number >= 0, got ${String(seed)}`);
  return [Math.floor(seed / 2 ** 32), seed % 2 ** 32];
}

function timeOf(now) {
  if (typeof now !== 'number') throw new TypeError(`now must be a number of ms, got ${typeof now}`);
  return now;
}

function costOf(n) {
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`cost must be a whole number >= 0, got ${String(n)}`);
  return n;
}

/**
 * The low-level shared rate limiter (the core's SharedLimiter), for hosts that drive the store
 * themselves: `check(key, now, cost)` answers a decision `{allowed, wait, retryAfter, source}`
 * or a request id; run `request(id)` once through a store (e.g. a RedisStore) and hand its
 * reply to `reply(id, reply, now)` for the decision. Times are ms on the caller's clock.
 * `new SharedLimiter({rateLimit, store, keyed?}, {seed})`.
 */
export class SharedLimiter extends Emitter {
  #raw;

  constructor(config, options = {}) {
    requireStore('SharedLimiter');
    super(STORE_EVENTS, (on) => this.#raw?.setListening(on));
    const [hi, lo] = seedOf(options?.seed);
    this.#raw = native(() => new raw.RawSharedLimiter(configInput(config), hi, lo));
  }

  #live() {
    const l = this.#raw;
    if (l === null) throw disposedError('SharedLimiter');
    return l;
  }

  #answer(l, code) {
    const o = out();
    let result;
    switch (code & DECISION) {
      case ALLOWED:
        result = { allowed: true, wait: o[TIME], retryAfter: 0, source: SOURCES[o[KIND]] };
        break;
      case DENIED: {
        const retryAfter = o[RETRY_AFTER];
        result = { allowed: false, wait: 0, retryAfter: Number.isNaN(retryAfter) ? Infinity : retryAfter, source: SOURCES[o[KIND]] };
        break;
      }
      case SEND:
        result = o[TICKET];
        break;
      default:
        throw new TypeError(l.lastError());
    }
    if (code & EVENTS) this.#drain(l);
    return result;
  }

  #drain(l) {
    for (let c = l.nextEvent(); c !== 0; c = l.nextEvent()) this.emit(readEvent(c));
  }

  /**
   * Decide `cost` (default 1) for `key` ("" when not keyed) at `now`: a decision
   * `{allowed, wait, retryAfter, source}` (`retryAfter` Infinity when no time is known), or
   * the id (a number) of a request to run.
   */
  check(key, now, cost = 1) {
    const l = this.#live();
    if (typeof key !== 'string') throw new TypeError(`check(key, now, cost): key must be a string, got ${typeof key}`);
    return this.#answer(l, l.check(key, timeOf(now), costOf(cost)));
  }

  /** The request `id`, or undefined once it was answered or abandoned. */
  request(id) {
    const s = this.#live().request(id);
    return s === undefined ? undefined : requestOf(id, s);
  }

  /** The reply to request `id` (see the file header): the decision. */
  reply(id, reply, now) {
    const l = this.#live();
    const [kind, values, message] = encode(reply);
    return this.#answer(l, l.reply(id, kind, values, message, timeOf(now)));
  }

  /** Forget request `id` (its caller went away). The store may still count it. */
  abandon(id, now) {
    const l = this.#live();
    if (l.abandon(id, timeOf(now)) & EVENTS) this.#drain(l);
  }

  /** Counters per source, the store breaker's state, in-flight requests and the fallback's N. */
  metrics() {
    return this.#live().metrics();
  }

  /** The store breaker's state: "closed" while the store is used. */
  storeState() {
    return STATES[this.#live().storeState()];
  }

  /** The store's last error reply (CROSSSLOT, NOPERM, WRONGTYPE...), or null. */
  get lastError() {
    return this.#live().storeError() ?? null;
  }

  /** This instance's heartbeat id. */
  get member() {
    return this.#live().member();
  }

  /** Let the script use the caller's `now` instead of the store's clock: conformance tests only. */
  useHostClock(on) {
    this.#live().useHostClock(Boolean(on));
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
