// One attempt's context (`fn({signal, attempt})`) and the per-pipeline deadline timer.
//
// Timers cost: an AbortController is created only when `fn` reads `signal` on an attempt that
// has a deadline (without one, the attempt's signal is the caller's, or a shared one that
// never aborts), and a pipeline arms one timer for all of its running attempts, at the
// earliest deadline, re-armed only when an earlier one arrives.
import { TimeoutError } from './errors.js';
import { readClock, systemClock } from './clock.js';

const NEVER = new AbortController().signal;

// Accessors to Attempt's private fields for the deadline list below (set in a static block;
// private fields keep `fn`'s argument down to `signal` and `attempt`, and cost no more than
// ordinary properties, unlike symbol-keyed ones).
let deadlineOf;
let expire;
let expiredOf;
let prevOf;
let nextOf;
let link;
let release;

/** The argument of a protected function: `{signal, attempt}`. */
export class Attempt {
  #parent;
  #deadline;
  #controller = null;
  #expired = false;
  #unlink = null;
  #prev = null;
  #next = null;

  constructor(attempt, parent, deadline) {
    /** The attempt number, 1 for the first. */
    this.attempt = attempt;
    this.#parent = parent;
    this.#deadline = deadline;
  }

  /**
   * Aborted when this attempt times out (reason: a TimeoutError) or the caller's signal
   * aborts (its reason). Pass it on to fetch() and friends.
   */
  get signal() {
    const existing = this.#controller;
    if (existing !== null) return existing.signal;
    const parent = this.#parent;
    if (this.#deadline !== this.#deadline) return parent ?? NEVER;
    const controller = new AbortController();
    this.#controller = controller;
    if (this.#expired) {
      controller.abort(new TimeoutError());
    } else if (parent !== null) {
      if (parent.aborted) {
        controller.abort(parent.reason);
      } else {
        const onAbort = () => controller.abort(parent.reason);
        parent.addEventListener('abort', onAbort, { once: true });
        this.#unlink = () => parent.removeEventListener('abort', onAbort);
      }
    }
    return controller.signal;
  }

  static {
    deadlineOf = (a) => a.#deadline;
    expiredOf = (a) => a.#expired;
    expire = (a) => {
      a.#expired = true;
      const controller = a.#controller;
      if (controller !== null) controller.abort(new TimeoutError());
    };
    prevOf = (a) => a.#prev;
    nextOf = (a) => a.#next;
    link = (a, prev, next) => {
      a.#prev = prev;
      a.#next = next;
    };
    release = (a) => {
      const unlink = a.#unlink;
      if (unlink !== null) {
        a.#unlink = null;
        unlink();
      }
    };
  }
}

/** Whether the attempt has a deadline (and so is tracked by the deadline timer). */
export function timed(attempt) {
  const d = deadlineOf(attempt);
  return d === d;
}

/** Whether the attempt's deadline passed while it ran. */
export function expired(attempt) {
  return expiredOf(attempt);
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
  #unrefQueued = false;
  #fire = () => this.#onTimer();
  // Unref'ing a Node timer is a native call; a pipeline that goes idle after each call would
  // pay it twice per call. Instead, going idle queues one check for after the current batch
  // of work (setImmediate), which unrefs the timer only if the pipeline is still idle then.
  #unrefIfIdle = () => {
    this.#unrefQueued = false;
    if (this.#head === null && this.#refed) this.#ref(false);
  };

  constructor(clock) {
    this.#clock = clock;
  }

  /** Track a running attempt with a deadline. */
  add(attempt) {
    const head = this.#head;
    link(attempt, null, head);
    if (head !== null) link(head, attempt, nextOf(head));
    this.#head = attempt;
    const deadline = deadlineOf(attempt);
    if (deadline < this.#armedAt) this.#arm(deadline);
    else if (!this.#refed) this.#ref(true);
  }

  /** Stop tracking an attempt that ended. */
  remove(attempt) {
    const prev = prevOf(attempt);
    const next = nextOf(attempt);
    if (prev !== null) link(prev, prevOf(prev), next);
    else if (this.#head === attempt) this.#head = next;
    else return; // already expired and unlinked
    if (next !== null) link(next, prev, nextOf(next));
    link(attempt, null, null);
    release(attempt);
    if (this.#head === null && this.#refed && !this.#unrefQueued) {
      const setImmediate = globalThis.setImmediate;
      if (typeof setImmediate === 'function') {
        this.#unrefQueued = true;
        setImmediate(this.#unrefIfIdle);
      } else {
        this.#ref(false);
      }
    }
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
    // At least 1 ms (timers have ms granularity; an early wake-up re-arms for the rest) and at
    // most setTimeout's longest delay (Node fires longer ones at once).
    const wait = Math.min(2_147_483_647, Math.max(1, Math.ceil(at - readClock(clock))));
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
    let now;
    try {
      now = readClock(this.#clock);
    } catch {
      // A broken clock: nothing can be timed. The calls themselves fail with the TypeError when
      // they next read it; throwing here would only crash the process from a timer.
      return;
    }
    let next = Infinity;
    for (let a = this.#head; a !== null; ) {
      const following = nextOf(a);
      const deadline = deadlineOf(a);
      if (deadline <= now) {
        this.remove(a);
        expire(a);
      } else if (deadline < next) {
        next = deadline;
      }
      a = following;
    }
    if (next !== Infinity) this.#arm(next);
  }
}
