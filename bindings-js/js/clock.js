// Clocks: `{now(): ms, sleep(ms, signal?): Promise<void>}`. The system clock looks up
// `performance.now` and `setTimeout` at each call, so fake timers installed after tripwire was
// imported (sinon, jest, node:test mock timers) still drive it.

function abortReason(signal) {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

// setTimeout's longest delay; Node fires longer ones after 1 ms (with a warning). A longer sleep
// wakes at this bound and its caller, which re-checks the time, sleeps again.
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Resolves after `ms` (rejects with the signal's reason if it aborts first). `background`: the
 * timer does not keep Node's event loop alive (`unref`; browsers have no such notion).
 */
function systemSleep(ms, signal, background = false) {
  ms = Math.min(ms, MAX_TIMER_MS);
  return new Promise((resolve, reject) => {
    let handle;
    if (signal !== undefined && signal !== null) {
      if (signal.aborted) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = () => {
        globalThis.clearTimeout(handle);
        reject(abortReason(signal));
      };
      handle = globalThis.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    } else {
      handle = globalThis.setTimeout(resolve, ms);
    }
    if (background) handle?.unref?.();
  });
}

/** The host's monotonic clock (`performance.now()`) and timers (`setTimeout`). */
export const systemClock = Object.freeze({
  now() {
    return globalThis.performance.now();
  },
  sleep(ms, signal) {
    return systemSleep(ms, signal);
  },
});

/** The clock from a constructor's options, checked once. */
export function clockOf(options) {
  const clock = options?.clock;
  if (clock === undefined || clock === null) return systemClock;
  if (typeof clock.now !== 'function' || typeof clock.sleep !== 'function') {
    throw new TypeError('options.clock must have now() (ms) and sleep(ms, signal) methods');
  }
  return clock;
}

/**
 * Read a clock. A clock that returns something other than a finite number is broken: that is a
 * TypeError, before any state is touched. (Time going backwards is fine: the core clamps it.)
 */
export function readClock(clock) {
  const now = clock.now();
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new TypeError(`clock.now() must return a finite number of milliseconds, got ${String(now)}`);
  }
  return now;
}

/**
 * A caller's deadline as ms on `clock`'s timeline: a number is already on it (e.g.
 * `pipeline.clock.now() + 2000`), a Date is wall-clock time and is converted; undefined or
 * +Infinity is "none" (NaN here).
 */
export function deadlineOf(deadline, clock) {
  if (deadline === undefined || deadline === null || deadline === Infinity) return NaN;
  if (typeof deadline === 'number') {
    if (Number.isNaN(deadline) || deadline === -Infinity) {
      throw new TypeError(`options.deadline must be a number of ms on the pipeline's clock or a Date, got ${deadline}`);
    }
    return deadline;
  }
  if (deadline instanceof Date) {
    const at = deadline.getTime();
    if (Number.isNaN(at)) throw new TypeError('options.deadline is an invalid Date');
    return readClock(clock) + (at - Date.now());
  }
  throw new TypeError(`options.deadline must be a number of ms on the pipeline's clock or a Date, got ${typeof deadline}`);
}

/** Sleep on `clock` until it reads at least `at` (a clock's timer may fire a little early). */
export async function sleepUntil(clock, at, signal) {
  for (let wait = at - readClock(clock); wait > 0; wait = at - readClock(clock)) {
    await clock.sleep(wait, signal);
  }
}

/**
 * As `sleepUntil`, for a background task: on the system clock its timer never keeps Node's
 * process alive. (Another clock's `sleep` is the caller's to make so.)
 */
export async function sleepUntilInBackground(clock, at, signal) {
  for (let wait = at - readClock(clock); wait > 0; wait = at - readClock(clock)) {
    await (clock === systemClock ? systemSleep(wait, signal, true) : clock.sleep(wait, signal));
  }
}
