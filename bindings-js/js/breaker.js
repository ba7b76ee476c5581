// CircuitBreaker: a breaker on its own. `execute` is acquire → run → record, two boundary
// crossings and two clock reads per call; none on the system clock when the core says the
// instants cannot matter (closed, consecutive rule: `acquireUntimed`, `recordSuccess`). Every
// transition is the core's.
import { raw } from './native.js';
import { out, RETRY_AFTER, PERMIT } from './out.js';
import { STATES } from './names.js';
import { CircuitOpenError, native, disposedError, configInput } from './errors.js';
import { clockOf, readClock, systemClock } from './clock.js';
import { isResponse } from './classify.js';
import { Emitter, POLICY_EVENTS, readEvent } from './emitter.js';
import { retryableOf, classify } from './pipeline.js';
import { DISPOSE } from './lifecycle.js';

const ADMITTED = 1;
const EVENTS = 2;
const NEED_TIME = 8;
const SUCCESS = 0;
const NEVER = new AbortController().signal;
// The argument of `fn` when the caller passed no signal: shared, so a call allocates nothing.
const QUIET = Object.freeze({ signal: NEVER, attempt: 1 });

/** `new CircuitBreaker(config, {clock, retryable})`: config is DESIGN.md §3.1's. */
export class CircuitBreaker extends Emitter {
  #raw;
  #clock;
  #retryable;
  #untimed;

  constructor(config = {}, options = {}) {
    super(POLICY_EVENTS, (on) => this.#raw?.setListening(on));
    this.#clock = clockOf(options);
    // The untimed acquire and success record are exact only on a clock that never goes back:
    // performance.now() is one; a caller's clock may be set back (fake timers), so it is read.
    this.#untimed = this.#clock === systemClock;
    this.#retryable = retryableOf(options);
    this.#raw = native(() => new raw.RawBreaker(configInput(config)));
  }

  #live() {
    const b = this.#raw;
    if (b === null) throw disposedError('CircuitBreaker');
    return b;
  }

  #drain(b) {
    for (let c = b.nextEvent(); c !== 0; c = b.nextEvent()) this.emit(readEvent(c));
  }

  /**
   * Run `fn({signal, attempt})` if the breaker admits it: resolves with its value or rejects
   * with its error (recorded as a failure, or ignored when `retryable` says "ignore"); rejects
   * with a CircuitOpenError (with `retryAfter` in ms when known) when refused.
   */
  execute(fn, options) {
    // Not an async function: chaining the outcome onto fn's promise with `then` costs less than
    // an async frame, and this is the whole per-call overhead of a breaker.
    let b;
    let arg = QUIET;
    try {
      b = this.#live();
      if (typeof fn !== 'function') throw new TypeError('execute(fn): fn must be a function');
      const signal = options?.signal;
      if (signal !== undefined && signal !== null) {
        if (signal.aborted) throw signal.reason;
        arg = { signal, attempt: 1 };
      }
    } catch (e) {
      return Promise.reject(e);
    }
    let code = NEED_TIME;
    try {
      // Closed under a consecutive rule the core admits without the instant; otherwise it
      // said NEED_TIME and did nothing.
      if (this.#untimed) code = b.acquireUntimed();
      if (code & NEED_TIME) code = b.acquire(readClock(this.#clock));
    } catch (e) {
      return Promise.reject(e);
    }
    if (code & EVENTS) this.#drain(b);
    const o = out();
    if ((code & ADMITTED) === 0) return Promise.reject(new CircuitOpenError(undefined, { retryAfter: o[RETRY_AFTER] }));
    const generation = o[PERMIT];
    const hi = o[PERMIT + 1];
    const lo = o[PERMIT + 2];
    const trial = o[PERMIT + 3] === 1;
    let result;
    try {
      result = fn(arg);
    } catch (e) {
      this.#record(b, generation, hi, lo, trial, this.#outcomeOf(e));
      return Promise.reject(e);
    }
    return Promise.resolve(result).then(
      (value) => {
        const outcome = typeof value === 'object' && value !== null && isResponse(value) && !value.ok ? this.#outcomeOf(value) : 0;
        this.#record(b, generation, hi, lo, trial, outcome);
        return value;
      },
      (error) => {
        this.#record(b, generation, hi, lo, trial, this.#outcomeOf(error));
        throw error;
      },
    );
  }

  // 1 failure or 2 ignored, as the predicate says.
  #outcomeOf(error) {
    return classify(this.#retryable, error) === 'ignore' ? 2 : 1;
  }

  #record(b, generation, hi, lo, trial, outcome) {
    if (this.#raw !== b) return; // disposed while the call ran
    let code = NEED_TIME;
    // A success the core can record without its end instant (e.g. closed, consecutive rule)
    // spares a clock read; otherwise the core said NEED_TIME and recorded nothing.
    if (outcome === SUCCESS && this.#untimed) code = b.recordSuccess(generation, hi, lo, trial);
    if (code & NEED_TIME) code = b.record(generation, hi, lo, trial, outcome, readClock(this.#clock));
    if (code & EVENTS) this.#drain(b);
  }

  /** "closed", "open", "halfOpen", "forcedOpen" or "disabled", as of the last call or change. */
  get state() {
    return STATES[this.#live().state()];
  }

  /** When the open period ends (ms on the breaker's clock), or undefined when not open. */
  get openUntil() {
    const at = this.#live().pollTimeout();
    return Number.isNaN(at) ? undefined : at;
  }

  #control(method) {
    const b = this.#live();
    const code = b[method](readClock(this.#clock));
    if (code & EVENTS) this.#drain(b);
  }

  /** Reject every call until `reset()`. */
  forceOpen() {
    this.#control('forceOpen');
  }

  /** Admit every call (metrics only) until `reset()`. */
  disable() {
    this.#control('disable');
  }

  /** Back to closed, with an empty window. */
  reset() {
    this.#control('reset');
  }

  /** Counters and gauges (the core's BreakerMetrics). */
  stats() {
    return this.#live().metrics();
  }

  /** The breaker's state as a small JSON-ready object (the core's snapshot). */
  toJSON() {
    const b = this.#live();
    // Tell the breaker the time first: an open period's remaining time counts from now.
    const code = b.handleTimeout(readClock(this.#clock));
    if (code & EVENTS) this.#drain(b);
    return b.snapshot();
  }

  /** Take a state saved by `toJSON()` (object or JSON text); a ConfigError when it does not fit. */
  restore(snapshot) {
    const b = this.#live();
    const code = native(() => b.restore(configInput(snapshot), readClock(this.#clock)));
    if (code & EVENTS) this.#drain(b);
  }

  /** Free the wasm memory now; any later use throws. */
  dispose() {
    const b = this.#raw;
    if (b === null) return;
    this.#raw = null;
    b.free();
  }

  [DISPOSE]() {
    this.dispose();
  }
}

