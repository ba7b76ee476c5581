// One attempt's context (`fn({signal, attempt})`) and the per-pipeline deadline timer.
//
// Timers cost: an AbortController is created only when `fn` reads `signal` on an attempt that
// has a deadline (without one, the attempt's signal is the caller's, or a shared one that
// never aborts), and a pipeline arms one timer for all of its running attempts, at the
// earliest deadline, re-armed only when an earlier one arrives.
import { TimeoutError } from './errors.js';
import { readClock, systemClock } from './clock.js';

const NEVER = new AbortController().signal;

// Internal fields, keyed by module-private symbols so that `fn` sees only `signal`/`attempt`.
const PARENT = Symbol('parent');
const DEADLINE = Symbol('deadline');
const CONTROLLER = Symbol('controller');
const EXPIRED = Symbol('expired');
const UNLINK = Symbol('unlink');
const PREV = Symbol('prev');
const NEXT = Symbol('next');

/** The argument of a protected function: `{signal, attempt}`. */
export class Attempt {
  constructor(attempt, parent, deadline) {
    /** The attempt number, 1 for the first. */
    this.attempt = attempt;
    this[PARENT] = parent;
    this[DEADLINE] = deadline;
    this[CONTROLLER] = null;
    this[EXPIRED] = false;
    this[UNLINK] = null;
    this[PREV] = null;
    this[NEXT] = null;
  }

  /**
   * Aborted when this attempt times out (reason: a TimeoutError) or the caller's signal
   * aborts (its reason). Pass it on to fetch() and friends.
   */
  get signal() {
    const existing = this[CONTROLLER];
    if (existing !== null) return existing.signal;
    const parent = this[PARENT];
    if (this[DEADLINE] !== this[DEADLINE]) return parent ?? NEVER;
    const controller = new AbortController();
    this[CONTROLLER] = controller;
    if (this[EXPIRED]) {
      controller.abort(new TimeoutError());
    } else if (parent !== null) {
      if (parent.aborted) {
        controller.abort(parent.reason);
      } else {
        const onAbort = () => controller.abort(parent.reason);
        parent.addEventListener('abort', onAbort, { once: true });
        this[UNLINK] = () => parent.removeEventListener('abort', onAbort);
      }
    }
    return controller.signal;
  }
}

/** Whether the attempt's deadline passed while it ran. */
export function expired(attempt) {
  return attempt[EXPIRED];
}

function expire(attempt) {
  attempt[EXPIRED] = true;
  const controller = attempt[CONTROLLER];
  if (controller !== null) controller.abort(new TimeoutError());
}

/**
 * The running attempts of one pipeline that have a deadline, in a linked list, and one timer
 * at the earliest deadline. With the system clock the timer is a `setTimeout`, unref'd while no
 * attempt runs (an idle pipeline never keeps Node alive); with another clock it is that
 * clock's `sleep`.
 */
export class Deadlines {
  #clock;
  #head = null;
  #armedAt = Infinity;
  #handle = null;
  #refed = false;
  #controller = null;
  #generation = 0;
  #fire = () => this.#onTimer();

  constructor(clock) {
    this.#clock = clock;
  }

  /** Track a running attempt with a deadline. */
  add(attempt) {
    const head = this.#head;
    attempt[NEXT] = head;
    if (head !== null) head[PREV] = attempt;
    this.#head = attempt;
    if (attempt[DEADLINE] < this.#armedAt) this.#arm(attempt[DEADLINE]);
    else if (!this.#refed) this.#ref(true);
  }

  /** Stop tracking an attempt that ended. */
  remove(attempt) {
    const prev = attempt[PREV];
    const next = attempt[NEXT];
    if (prev !== null) prev[NEXT] = next;
    else if (this.#head === attempt) this.#head = next;
    else return; // already expired and unlinked
    if (next !== null) next[PREV] = prev;
    attempt[PREV] = attempt[NEXT] = null;
    const unlink = attempt[UNLINK];
    if (unlink !== null) unlink();
    if (this.#head === null && this.#refed) this.#ref(false);
  }

  /** Stop the timer (the pipeline was disposed). */
  dispose() {
    this.#cancel();
    this.#head = null;
  }

  #ref(on) {
    this.#refed = on;
    const handle = this.#handle;
    if (handle !== null && typeof handle === 'object' && typeof handle.ref === 'function') {
      if (on) handle.ref();
      else handle.unref();
    }
  }

  #cancel() {
    if (this.#handle !== null) {
      globalThis.clearTimeout(this.#handle);
      this.#handle = null;
    }
    if (this.#controller !== null) {
      this.#controller.abort();
      this.#controller = null;
    }
    this.#generation++;
    this.#armedAt = Infinity;
  }

  #arm(at) {
    this.#cancel();
    this.#armedAt = at;
    const clock = this.#clock;
    // At least 1 ms: timers have ms granularity, and an early wake-up re-arms for the rest.
    const wait = Math.max(1, Math.ceil(at - readClock(clock)));
    if (clock === systemClock) {
      this.#handle = globalThis.setTimeout(this.#fire, wait);
      this.#refed = true;
      if (this.#head === null) this.#ref(false);
    } else {
      const generation = this.#generation;
      const controller = new AbortController();
      this.#controller = controller;
      clock.sleep(wait, controller.signal).then(
        () => {
          if (generation === this.#generation) this.#onTimer();
        },
        () => {},
      );
    }
  }

  #onTimer() {
    this.#handle = null;
    this.#controller = null;
    this.#armedAt = Infinity;
    const now = readClock(this.#clock);
    let next = Infinity;
    for (let a = this.#head; a !== null; ) {
      const following = a[NEXT];
      if (a[DEADLINE] <= now) {
        this.remove(a);
        expire(a);
      } else if (a[DEADLINE] < next) {
        next = a[DEADLINE];
      }
      a = following;
    }
    if (next !== Infinity) this.#arm(next);
  }
}
