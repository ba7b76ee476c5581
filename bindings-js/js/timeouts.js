// Store request timeouts (SCALE-OUT.md: the host enforces each request's timeout) with one
// timer per store instead of one per request. Pure JavaScript, the same in every build.

const now = () => globalThis.performance.now();

/**
 * The requests in flight of one store and one timer at the earliest deadline: a request that
 * ends only leaves the set; the timer, when it fires, expires what is due and re-arms for the
 * next deadline.
 */
export class Timeouts {
  #pending = new Set();
  #armedAt = Infinity;
  #handle = null;
  #fire = () => this.#onTimer();

  /**
   * Track a request that gives up `ms` from now: `resolve("timeout")` and `onTimeout()` then,
   * unless `settle` came first. Returns the entry to settle.
   */
  track(ms, resolve, onTimeout) {
    const entry = { deadline: now() + ms, done: false, resolve, onTimeout };
    this.#pending.add(entry);
    if (entry.deadline < this.#armedAt) this.#arm(entry.deadline);
    return entry;
  }

  /** Resolve with `reply`'s value, or "timeout" if it comes `ms` from now or later. */
  race(reply, ms) {
    return new Promise((resolve) => {
      const entry = this.track(ms, resolve, undefined);
      reply.then((value) => this.settle(entry, value));
    });
  }

  /** Resolve `entry` with `value` unless it timed out already. */
  settle(entry, value) {
    if (entry.done) return;
    entry.done = true;
    this.#pending.delete(entry);
    entry.resolve(value);
  }

  #arm(at) {
    if (this.#handle !== null) globalThis.clearTimeout(this.#handle);
    this.#armedAt = at;
    const handle = globalThis.setTimeout(this.#fire, Math.max(1, Math.ceil(at - now())));
    // Never what keeps Node alive: a request in flight holds its client's socket, which does.
    if (typeof handle === 'object' && typeof handle.unref === 'function') handle.unref();
    this.#handle = handle;
  }

  #onTimer() {
    this.#handle = null;
    this.#armedAt = Infinity;
    const t = now();
    let next = Infinity;
    for (const entry of this.#pending) {
      if (entry.deadline <= t) {
        this.#pending.delete(entry);
        entry.done = true;
        if (entry.onTimeout !== undefined) entry.onTimeout();
        entry.resolve('timeout');
      } else if (entry.deadline < next) {
        next = entry.deadline;
      }
    }
    if (next !== Infinity) this.#arm(next);
  }
}
