// tripwire/testing: a clock whose time moves only when a test says so.

const FLUSH_HOPS = 64;

async function flushMicrotasks() {
  for (let i = 0; i < FLUSH_HOPS; i++) await undefined;
}

/**
 * A manual clock: `now()` returns the time the test set, and `sleep(ms, signal)` resolves when
 * `advance` moves time past its end. Pass it as `{clock}` to any tripwire constructor.
 *
 *     const clock = new FakeClock();
 *     const p = new Pipeline({timeout: {perAttempt: 100}}, {clock});
 *     const call = p.execute(({signal}) => new Promise((_, reject) => signal.onabort = () => reject(signal.reason)));
 *     await clock.advance(100);   // the attempt's signal aborts; call rejects with a TimeoutError
 */
export class FakeClock {
  #now;
  #timers = [];
  #seq = 0;

  constructor(start = 0) {
    if (typeof start !== 'number' || !Number.isFinite(start)) throw new TypeError('FakeClock(start): start must be a finite number');
    this.#now = start;
  }

  /** The current time in ms. */
  now() {
    return this.#now;
  }

  /** Resolves when the clock has advanced `ms`; rejects with the signal's reason on abort. */
  sleep(ms, signal) {
    if (typeof ms !== 'number' || Number.isNaN(ms)) return Promise.reject(new TypeError(`sleep(ms): ms must be a number, got ${String(ms)}`));
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, resolve, onAbort: null };
      if (signal) {
        timer.onAbort = () => {
          this.#timers = this.#timers.filter((t) => t !== timer);
          reject(signal.reason);
        };
        signal.addEventListener('abort', timer.onAbort, { once: true });
        timer.signal = signal;
      }
      this.#timers.push(timer);
    });
  }

  /** Sleeps not yet resolved. */
  get pending() {
    return this.#timers.length;
  }

  /**
   * Move time forward by `ms`, resolving due sleeps in time order and letting the code they
   * wake run (and sleep again) before the next one; resolves when everything due by the new
   * time has run.
   */
  async advance(ms) {
    if (typeof ms !== 'number' || !(ms >= 0)) throw new TypeError(`advance(ms): ms must be a number >= 0, got ${String(ms)}`);
    await this.advanceTo(this.#now + ms);
  }

  /** Move time forward to `at` (as `advance`). */
  async advanceTo(at) {
    await flushMicrotasks();
    for (;;) {
      let next = null;
      for (const t of this.#timers) {
        if (t.at <= at && (next === null || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (next === null) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      if (next.at > this.#now) this.#now = next.at;
      if (next.signal) next.signal.removeEventListener('abort', next.onAbort);
      next.resolve();
      await flushMicrotasks();
    }
    if (at > this.#now) this.#now = at;
    await flushMicrotasks();
  }

  /**
   * Set the time to `ms`, even backwards (to test how policies take a clock that steps back);
   * no sleep is resolved.
   */
  set(ms) {
    if (typeof ms !== 'number') throw new TypeError('set(ms): ms must be a number');
    this.#now = ms;
  }
}
