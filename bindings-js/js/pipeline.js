// Pipeline: the policies of one named entry around a call, driven through the core's step
// protocol (DESIGN.md §3.8). Every decision is the core's; this file runs the function,
// sleeps, parks, times attempts out and maps the outcome to a value or an error.
import { raw } from './native.js';
import { out, CALL, ATTEMPTS, TIME, KIND, RETRY_AFTER, FALLBACK, CAUSE, WAKE, TICKET } from './out.js';
import { KINDS, STATES } from './names.js';
import { errorOf, native, disposedError, configInput, TimeoutError } from './errors.js';
import { clockOf, readClock, deadlineOf, systemClock } from './clock.js';
import { defaultRetryable, retryAfterOf, isResponse } from './classify.js';
import { Emitter, POLICY_EVENTS, readEvent } from './emitter.js';
import { Attempt, Deadlines, expired, timed } from './attempt.js';
import { DISPOSE, randomSeed } from './lifecycle.js';
import { storeOf, shownStore, runStoreStep, reportStoreStep, HAS_STORE } from './store.js';

// Result codes of the low-level pipeline (bindings-js/src/pipeline.rs).
const STEP_MASK = 7;
const ATTEMPT = 0;
const SLEEP = 1;
const PARK = 2;
const DONE = 3;
const FAIL = 4;
const STORE = 7;
const EVENTS = 8;
const WAKES = 16;
const NEED_TIME = 32;
// Outcome codes.
const SUCCESS = 0;
const FAILURE = 1;
const TIMEOUT = 2;
const IGNORED = 3;

/** A constructor option (module-private) naming the object for messages: a Bulkhead is a pipeline inside. */
export const DISPLAY_NAME = Symbol('displayName');

/** One call's state while the general loop drives it. */
class Call {
  constructor(fn, signal, index, generation) {
    this.fn = fn;
    this.signal = signal;
    this.index = index;
    this.generation = generation;
    this.live = true; // the core still holds the call
    this.attempt = null;
    this.threw = false; // the last attempt threw `result` (else it returned it)
    this.result = undefined;
    this.fallback = undefined;
    this.hasFallback = false;
  }
}

/** Wraps a low-level pipeline built elsewhere (a policy file entry). Not exported publicly. */
export class Adopted {
  constructor(rawPipeline, name) {
    this.raw = rawPipeline;
    this.name = name;
  }
}

/** The `retryable` option, checked once. */
export function retryableOf(options) {
  const retryable = options?.retryable;
  if (retryable === undefined || retryable === null) return defaultRetryable;
  if (typeof retryable !== 'function') throw new TypeError('options.retryable must be a function');
  return retryable;
}

/** The predicate's verdict on a failure: true, false or "ignore" (a predicate that throws: false). */
export function classify(retryable, error) {
  let verdict;
  try {
    verdict = retryable(error);
  } catch (e) {
    // A predicate that throws cannot decide: the failure counts and is not retried.
    queueMicrotask(() => {
      throw e;
    });
    verdict = false;
  }
  return verdict;
}

/**
 * Try each fallback in order (the seed's cache → database → default): a value is used as is; a
 * function is called with the call's error, and falls through to the next one when it throws
 * or returns undefined (a cache miss). The last one's result is final, whatever it is; when it
 * throws, its error is the call's.
 */
async function applyFallback(fallback, error) {
  const chain = Array.isArray(fallback) ? fallback : [fallback];
  let failure = error;
  for (let i = 0; i < chain.length; i++) {
    const f = chain[i];
    if (typeof f !== 'function') return f;
    const last = i === chain.length - 1;
    try {
      const value = await f(error);
      if (value !== undefined || last) return value;
    } catch (e) {
      if (last) throw e;
      failure = e;
    }
  }
  throw failure;
}

/**
 * A pipeline: any of rateLimit, bulkhead, circuitBreaker, retry, timeout and fallback, in the
 * configured order. `new Pipeline(config, {clock, retryable, name, store})`; `store` (an
 * ioredis or node-redis client, see tripwire/redis) runs the requests of a `store` config's
 * shared rate limit: without one they are "unavailable" and `store.onUnavailable` decides.
 */
export class Pipeline extends Emitter {
  #raw;
  #name;
  #clock;
  #retryable;
  #deadlines;
  #parked = new Map();
  #what = 'Pipeline';
  #untimed;
  #store;

  constructor(config = {}, options = {}) {
    super(POLICY_EVENTS, (on) => this.#raw?.setListening(on));
    this.#clock = clockOf(options);
    // The untimed success report is exact only on a clock that never goes back:
    // performance.now() is one; a caller's clock may be set back (fake timers), so it is read.
    this.#untimed = this.#clock === systemClock;
    this.#retryable = retryableOf(options);
    this.#store = storeOf(options?.store);
    if (config instanceof Adopted) {
      this.#raw = config.raw;
      this.#name = config.name;
    } else {
      const name = options?.name ?? 'default';
      if (typeof name !== 'string') throw new TypeError('options.name must be a string');
      const [hi, lo] = randomSeed();
      this.#raw = native(() => new raw.RawPipeline(configInput(config), hi, lo, name));
      this.#name = name;
    }
    this.#deadlines = new Deadlines(this.#clock);
    if (typeof options?.[DISPLAY_NAME] === 'string') this.#what = options[DISPLAY_NAME];
  }

  /** The name that labels this pipeline's metrics. */
  get name() {
    return this.#name;
  }

  /** What runs the shared rate limit's store requests (a RedisStore, with its counters), or null. */
  get store() {
    return shownStore(this.#store);
  }

  /**
   * The store's last error reply (CROSSSLOT, NOPERM, WRONGTYPE...: a deployment mistake that
   * `stats().store.errors` and `stats().share.failed` count), the shared rate limit's, else the
   * shared breaker's; null when none.
   */
  get storeLastError() {
    const p = this.#live();
    return HAS_STORE ? (p.storeLastError() ?? null) : null;
  }

  /** The clock this pipeline reads (deadlines passed to `execute` are on its timeline). */
  get clock() {
    return this.#clock;
  }

  #live() {
    const p = this.#raw;
    if (p === null) throw disposedError(this.#what);
    return p;
  }

  /**
   * Run `fn({signal, attempt})` through the policies. Resolves with its value; rejects with
   * its own error (when no retry applies), or a TripwireError subclass; or resolves with the
   * fallback's value when a fallback is given and the config's `fallback.on` covers the kind.
   */
  execute(fn, options) {
    const p = this.#raw;
    // The common call (no options, admitted at once, succeeds at the first attempt) runs
    // without an async frame: two boundary crossings, one or two clock reads, one `then`.
    if (p === null || typeof fn !== 'function' || (options !== undefined && options !== null)) {
      return this.#execute(fn, options);
    }
    let code;
    try {
      code = p.start(readClock(this.#clock), NaN);
    } catch (e) {
      return Promise.reject(e);
    }
    const o = out();
    const index = o[CALL];
    const generation = o[CALL + 1];
    if (code !== ATTEMPT) return this.#drive(p, new Call(fn, null, index, generation), code);
    let attempt;
    try {
      attempt = this.#begin(o, null);
    } catch (e) {
      this.#abandon(p, index, generation);
      return Promise.reject(e);
    }
    let result;
    try {
      result = fn(attempt);
    } catch (e) {
      return this.#settle(p, fn, index, generation, attempt, true, e);
    }
    return Promise.resolve(result).then(
      (value) => this.#settle(p, fn, index, generation, attempt, false, value),
      (error) => this.#settle(p, fn, index, generation, attempt, true, error),
    );
  }

  // The fast path's attempt ended: report it; done, or on to the general loop.
  #settle(p, fn, index, generation, attempt, threw, result) {
    let code;
    try {
      code = this.#report(p, index, generation, attempt, null, threw, result);
    } catch (e) {
      this.#abandon(p, index, generation);
      return Promise.reject(e);
    }
    if (code === DONE) return result;
    const call = new Call(fn, null, index, generation);
    call.attempt = attempt;
    call.threw = threw;
    call.result = result;
    return this.#drive(p, call, code);
  }

  // Cancel a call the core still holds (an error escaped between its steps).
  #abandon(p, index, generation) {
    if (this.#raw === p) this.#drain(p, p.cancel(index, generation, this.#clock.now()));
  }

  // Any call: options checked, then the general loop.
  async #execute(fn, options) {
    const p = this.#live();
    if (typeof fn !== 'function') throw new TypeError('execute(fn): fn must be a function');
    const clock = this.#clock;
    let signal = null;
    let deadline = NaN;
    if (options !== undefined && options !== null) {
      if (options.signal !== undefined && options.signal !== null) {
        signal = options.signal;
        if (signal.aborted) throw signal.reason;
      }
      deadline = deadlineOf(options.deadline, clock);
    }
    const code = p.start(readClock(clock), deadline);
    const o = out();
    const call = new Call(fn, signal, o[CALL], o[CALL + 1]);
    if (options !== undefined && options !== null && options.fallback !== undefined) {
      call.fallback = options.fallback;
      call.hasFallback = true;
    }
    return this.#drive(p, call, code);
  }

  // The attempt the core just handed out (its fields in `o`), tracked by the deadline timer.
  #begin(o, signal) {
    const at = o[TIME];
    const attempt = new Attempt(o[ATTEMPTS], signal, at);
    if (at === at) this.#deadlines.add(attempt);
    return attempt;
  }

  // Report how the running attempt ended (`threw`: with `result` as its error) and poll.
  #report(p, index, generation, attempt, signal, threw, result) {
    let outcome = SUCCESS;
    let retryable = false;
    let hint = NaN;
    if (threw || (typeof result === 'object' && result !== null && isResponse(result) && !result.ok)) {
      const verdict = classify(this.#retryable, result);
      outcome = verdict === 'ignore' ? IGNORED : FAILURE;
      retryable = verdict === true;
      if (outcome === FAILURE) hint = retryAfterOf(result);
    }
    if (timed(attempt)) {
      this.#deadlines.remove(attempt);
      if (expired(attempt)) outcome = TIMEOUT;
    }
    if (this.#raw !== p) throw disposedError(this.#what);
    if (signal !== null && signal.aborted) throw signal.reason; // the caller's loop cancels
    if (outcome === SUCCESS && this.#untimed) {
      // Most successes need no end instant (the core decides); NEED_TIME: nothing reported.
      const code = p.reportSuccess(index, generation);
      if (code !== NEED_TIME) return code;
    }
    return p.report(index, generation, outcome, retryable, hint, readClock(this.#clock));
  }

  #cancel(p, call) {
    if (!call.live) return;
    call.live = false;
    this.#abandon(p, call.index, call.generation);
  }

  // The general loop: hand out each step the core decides, until done or failed.
  async #drive(p, call, code) {
    const clock = this.#clock;
    const signal = call.signal;
    try {
      for (;;) {
        if (code & (EVENTS | WAKES)) this.#drain(p, code);
        const o = out();
        switch (code & STEP_MASK) {
          case ATTEMPT: {
            const attempt = this.#begin(o, signal);
            call.attempt = attempt;
            let threw = false;
            let result;
            try {
              result = await call.fn(attempt);
            } catch (e) {
              threw = true;
              result = e;
            }
            call.threw = threw;
            call.result = result;
            code = this.#report(p, call.index, call.generation, attempt, signal, threw, result);
            break;
          }
          case SLEEP: {
            const wait = o[TIME] - readClock(clock);
            if (wait > 0) {
              try {
                await clock.sleep(wait, signal ?? undefined);
              } catch (e) {
                if (signal === null || !signal.aborted) throw e;
              }
            }
            this.#afterWait(p, call);
            code = p.poll(call.index, call.generation, readClock(clock));
            break;
          }
          case PARK: {
            await this.#park(call.index, call.generation, o[TIME], signal);
            this.#afterWait(p, call);
            code = p.poll(call.index, call.generation, readClock(clock));
            break;
          }
          case STORE: {
            // The shared rate limit asks the store: one request, run once, its timeout enforced
            // by the store; a reply after the step's `until` is a timeout (the core says so
            // when polled then), never applied.
            const until = o[TIME];
            const reply = await runStoreStep(this.#store, p, o[TICKET], signal);
            this.#afterWait(p, call);
            const now = readClock(clock);
            code = now < until ? reportStoreStep(p, call.index, call.generation, reply, now) : p.poll(call.index, call.generation, now);
            break;
          }
          case DONE:
            call.live = false;
            return call.result;
          case FAIL:
            call.live = false;
            return await this.#fail(call, o);
          default:
            throw new Error(`tripwire: unexpected step (${p.lastError() || code})`);
        }
      }
    } catch (e) {
      this.#cancel(p, call);
      throw e;
    }
  }

  // After a wait: the pipeline may have been disposed and the caller may have given up.
  #afterWait(p, call) {
    if (this.#raw !== p) throw disposedError(this.#what);
    const signal = call.signal;
    if (signal !== null && signal.aborted) {
      this.#cancel(p, call);
      throw signal.reason;
    }
  }

  // The core failed the call: fall back, or raise the kind's error (the function's own error
  // for "failure").
  async #fail(call, o) {
    const kind = KINDS[o[KIND]];
    const fallbackApplies = call.hasFallback && o[FALLBACK] === 1;
    const { threw, result } = call;
    let failure;
    if (kind === 'failure') {
      // A failing Response the function returned stays the call's result.
      if (!threw && !fallbackApplies) return result;
      failure = result;
    } else {
      const causeKind = o[CAUSE] === 0 ? undefined : KINDS[o[CAUSE]];
      const cause = kind === 'timeout' ? (threw ? result : undefined) : causeKind === undefined ? undefined : this.#cause(causeKind, call);
      failure = errorOf(kind, { retryAfter: o[RETRY_AFTER], attempts: o[ATTEMPTS], cause });
    }
    if (fallbackApplies) return applyFallback(call.fallback, failure);
    throw failure;
  }

  // The error a give-up wraps as its `cause`: the last attempt's failure.
  #cause(kind, call) {
    if (kind === 'failure') return call.result;
    if (kind === 'timeout') return new TimeoutError(undefined, call.threw ? { cause: call.result } : {});
    return errorOf(kind, {});
  }

  // Wait in the bulkhead queue until woken, until `until`, or until the caller aborts.
  #park(index, generation, until, signal) {
    // Read the clock before anything is registered: a broken clock throws here, leaving nothing.
    const wait = until === until ? until - readClock(this.#clock) : NaN;
    return new Promise((resolve) => {
      let done = false;
      let controller = null;
      const wake = () => {
        if (done) return;
        done = true;
        this.#parked.delete(index);
        if (controller !== null) controller.abort();
        if (signal !== null) signal.removeEventListener('abort', wake);
        resolve();
      };
      this.#parked.set(index, { generation, wake });
      if (signal !== null) signal.addEventListener('abort', wake, { once: true });
      if (wait === wait) {
        if (wait > 0) {
          controller = new AbortController();
          this.#clock.sleep(wait, controller.signal).then(wake, () => {});
        } else {
          queueMicrotask(wake);
        }
      }
    });
  }

  // Hand out what the core queued: woken calls, then events.
  #drain(p, code) {
    if (code & WAKES) {
      while (p.nextWake()) {
        const o = out();
        const waiter = this.#parked.get(o[WAKE]);
        if (waiter !== undefined && waiter.generation === o[WAKE + 1]) waiter.wake();
      }
    }
    if (code & EVENTS) {
      for (let c = p.nextEvent(); c !== 0; c = p.nextEvent()) this.emit(readEvent(c));
    }
  }

  /** The breaker's state ("closed", "open", ...), or null without a circuit breaker. */
  get state() {
    const s = this.#live().breakerState();
    return s < 0 ? null : STATES[s];
  }

  #control(action) {
    const p = this.#live();
    if (!p.breakerControl(action, readClock(this.#clock))) {
      throw new TypeError(`pipeline "${this.#name}" has no circuit breaker`);
    }
    this.#drain(p, EVENTS | WAKES);
  }

  /** Open the breaker until `reset()`. */
  forceOpen() {
    this.#control(0);
  }

  /** Let every call through the breaker (metrics only) until `reset()`. */
  disable() {
    this.#control(1);
  }

  /** Close the breaker, with an empty window. */
  reset() {
    this.#control(2);
  }

  /** Counters and gauges (the core's PipelineStats, times in ms), plus the breaker's state. */
  stats() {
    const p = this.#live();
    const stats = p.stats();
    stats.state = this.state;
    return stats;
  }

  /** Prometheus text exposition of `stats()`, labelled `pipeline="<name>"`. */
  prometheus() {
    return this.#live().prometheus();
  }

  /** Apply a new config, keeping the state that still fits; a ConfigError keeps the old one. */
  reconfigure(config) {
    const p = this.#live();
    const code = native(() => p.reconfigure(configInput(config), readClock(this.#clock)));
    this.#drain(p, code);
  }

  /** The breaker's state as JSON (`{name, circuitBreaker}`), for `restore` in another process. */
  toJSON() {
    const p = this.#live();
    const snapshot = p.breakerSnapshot(readClock(this.#clock));
    this.#drain(p, EVENTS | WAKES);
    return { name: this.#name, circuitBreaker: snapshot };
  }

  /** Take a breaker state saved by `toJSON()` (a ConfigError when it does not fit). */
  restore(json) {
    const p = this.#live();
    const state = typeof json === 'string' ? configInput(json) : json;
    const snapshot = state !== null && typeof state === 'object' && 'circuitBreaker' in state ? state.circuitBreaker : state;
    native(() => p.breakerRestore(snapshot, readClock(this.#clock)));
    this.#drain(p, EVENTS | WAKES);
  }

  /** Free the wasm memory now; calls in flight reject, and any later use throws. */
  dispose() {
    const p = this.#raw;
    if (p === null) return;
    this.#raw = null;
    this.#deadlines.dispose();
    for (const waiter of [...this.#parked.values()]) waiter.wake();
    p.free();
  }

  [DISPOSE]() {
    this.dispose();
  }
}
