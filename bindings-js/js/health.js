// HealthChecker: the core plans which checks run and their deadlines; this runs them
// concurrently, each cancelled (its signal aborted) at its deadline, reports the results and
// returns the core's report. On demand (`check()`, `runDue()`) or on its own (`start()`: one
// timer on the clock, armed at the core's next due time).
import { raw } from './native.js';
import { HEALTH_STATUSES } from './names.js';
import { native, disposedError, configInput, TimeoutError } from './errors.js';
import { clockOf, readClock, sleepUntil, sleepUntilInBackground } from './clock.js';
import { Emitter, HEALTH_EVENTS, readHealthEvent } from './emitter.js';
import { DISPOSE } from './lifecycle.js';

function errorText(error) {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  return error === undefined ? undefined : String(error);
}

/**
 * `new HealthChecker(config?, {clock})`: config is `{checks: {name: checkConfig}}` (checks
 * declared up front; give each its function with `register(name, fn)`).
 */
export class HealthChecker extends Emitter {
  #raw;
  #clock;
  #fns = new Map();
  #breakers = new Map();
  // Periodic mode: on between start() and stop(); the armed timer is {at, abort}.
  #periodic = false;
  #timer = null;

  constructor(config, options = {}) {
    super(HEALTH_EVENTS, () => {});
    this.#clock = clockOf(options);
    this.#raw = native(() => new raw.RawHealth(config === undefined ? undefined : configInput(config)));
  }

  #live() {
    const h = this.#raw;
    if (h === null) throw disposedError('HealthChecker');
    return h;
  }

  /**
   * Add a check: `fn({signal})` passes by resolving and fails by throwing (or resolving
   * `false`). `options` is a check config: `{timeout, critical, interval, failureThreshold,
   * successThreshold}`; for a check declared in the constructor's config, omit it.
   */
  register(name, fn, options) {
    if (typeof name !== 'string') throw new TypeError('register(name, fn): name must be a string');
    if (typeof fn !== 'function') throw new TypeError('register(name, fn): fn must be a function');
    const h = this.#live();
    if (options !== undefined || Number.isNaN(h.id(name))) {
      native(() => h.register(name, options === undefined ? undefined : configInput(options)));
    }
    this.#fns.set(name, fn);
    this.#drain(h);
    this.#arm();
    return this;
  }

  /** Remove a check; false when none had that name. */
  unregister(name) {
    const h = this.#live();
    this.#fns.delete(name);
    const removed = h.unregister(name);
    this.#drain(h);
    this.#arm();
    return removed;
  }

  /**
   * List a circuit breaker (a CircuitBreaker, or a Pipeline with one) in the report: open,
   * half-open or forced open makes the status at least "degraded".
   */
  addBreaker(name, breaker) {
    if (typeof name !== 'string') throw new TypeError('addBreaker(name, breaker): name must be a string');
    if (breaker === null || typeof breaker !== 'object' || !('state' in breaker)) {
      throw new TypeError('addBreaker(name, breaker): breaker must be a CircuitBreaker or a Pipeline');
    }
    this.#breakers.set(name, breaker);
    return this;
  }

  /** Stop listing a breaker. */
  removeBreaker(name) {
    const listed = this.#breakers.delete(name);
    this.#live().removeBreaker(name);
    return listed;
  }

  /** "healthy", "degraded" or "unhealthy", as of the last check. */
  get status() {
    return HEALTH_STATUSES[this.#live().status()];
  }

  /**
   * Run every registered check now, concurrently, each bounded by its timeout; resolves with
   * the report: `{status, timestamp, checks: {name: {status, critical, latencyMs, error,
   * consecutiveFailures, consecutiveSuccesses}}, breakers: {name: {state}}}`.
   */
  async check() {
    const h = this.#live();
    await this.#settle(h, this.#startRuns(h, true));
    return h.reportJson(new Date().toISOString());
  }

  /**
   * Run the checks whose interval has come (a check is due at once when registered, then
   * `interval` after its previous run started), concurrently, each bounded by its timeout;
   * resolves once they have settled with the ms until the next one is due (0 when one already
   * is), or null without checks. For a loop of your own; `start()` runs one for you.
   */
  async runDue() {
    const h = this.#live();
    await this.#settle(h, this.#startRuns(h, false));
    const next = h.pollTimeout();
    return Number.isNaN(next) ? null : Math.max(0, next - readClock(this.#clock));
  }

  /**
   * Run due checks on their own from now on: one timer on the clock, armed at the next due
   * time, starts the checks whose interval has come and re-arms (a run that outlasts its
   * interval makes its check due the moment it ends). On the system clock the timer never
   * keeps Node's process alive. Results show in `report()`, `status` and the events.
   * `stop()` or `dispose()` ends it; calling `start()` again does nothing.
   */
  start() {
    this.#live();
    this.#periodic = true;
    this.#arm();
    return this;
  }

  /** End periodic mode; checks already running finish and report. */
  stop() {
    this.#periodic = false;
    this.#disarm();
    return this;
  }

  /** The report as of the last results; no check is run. */
  report() {
    const h = this.#live();
    this.#syncBreakers(h);
    this.#drain(h);
    return h.reportJson(new Date().toISOString());
  }

  #syncBreakers(h) {
    for (const [name, breaker] of this.#breakers) {
      const state = breaker.state;
      if (typeof state === 'string') h.setBreaker(name, state);
      else h.removeBreaker(name);
    }
  }

  // Start the due checks (every idle one for `all`); their runs' promises.
  #startRuns(h, all) {
    this.#syncBreakers(h);
    const now = readClock(this.#clock);
    const due = all ? h.dueAll(now) : h.due(now);
    const runs = [];
    for (let i = 0; i < due.length; i += 2) runs.push(this.#run(h, due[i], due[i + 1]));
    this.#drain(h);
    this.#arm();
    return runs;
  }

  async #settle(h, runs) {
    await Promise.all(runs);
    if (this.#raw !== h) throw disposedError('HealthChecker');
    h.expire(readClock(this.#clock));
    this.#drain(h);
  }

  // Periodic mode: make sure a timer fires no later than the core's next due time (or a
  // running check's deadline); none without checks.
  #arm() {
    const h = this.#raw;
    if (!this.#periodic || h === null) return;
    const at = h.pollTimeout();
    if (Number.isNaN(at)) {
      this.#disarm();
      return;
    }
    if (this.#timer !== null && this.#timer.at <= at) return;
    this.#disarm();
    const timer = { at, abort: new AbortController() };
    this.#timer = timer;
    sleepUntilInBackground(this.#clock, at, timer.abort.signal).then(
      () => {
        if (this.#timer !== timer) return;
        this.#timer = null;
        const live = this.#raw;
        if (!this.#periodic || live === null) return;
        // The runs report (and re-arm) as they settle; a broken clock stops periodic mode
        // and surfaces as an unhandled rejection.
        try {
          this.#startRuns(live, false);
        } catch (e) {
          this.stop();
          throw e;
        }
      },
      () => {},
    );
  }

  #disarm() {
    const timer = this.#timer;
    if (timer === null) return;
    this.#timer = null;
    timer.abort.abort();
  }

  // Run check `id` until it settles or `deadline` passes, then report (a late result is the
  // core's to ignore).
  async #run(h, id, deadline) {
    const clock = this.#clock;
    const name = h.name(id);
    const fn = this.#fns.get(name);
    const started = readClock(clock);
    const controller = new AbortController();
    const timer = new AbortController();
    const result = (async () => {
      if (fn === undefined) return { ok: false, error: `no function registered for check "${name}"` };
      try {
        const value = await fn({ signal: controller.signal });
        return value === false ? { ok: false, error: 'check returned false' } : { ok: true };
      } catch (e) {
        return { ok: false, error: errorText(e) };
      }
    })();
    const timeout = sleepUntil(clock, deadline, timer.signal).then(
      () => null,
      () => null,
    );
    const first = await Promise.race([result, timeout]);
    timer.abort();
    if (this.#raw !== h) return;
    const now = readClock(clock);
    if (first === null) {
      controller.abort(new TimeoutError(`health check "${name}" timed out`));
      h.expire(now);
    } else {
      h.report(id, first.ok, now - started, first.ok ? undefined : first.error, now);
    }
    this.#drain(h);
    this.#arm();
  }

  #drain(h) {
    const nameOf = (id) => h.name(id) ?? null;
    for (let c = h.nextEvent(); c !== 0; c = h.nextEvent()) this.emit(readHealthEvent(c, nameOf));
  }

  /**
   * A request handler for `node:http` and Express: runs the checks and answers with the report
   * as JSON, status 200 (healthy or degraded) or 503 (unhealthy).
   */
  healthHandler() {
    return (req, res) => {
      this.check().then(
        (report) => {
          const h = this.#raw;
          send(res, h === null ? 503 : h.httpStatus(), report);
        },
        (e) => send(res, 503, { status: 'unhealthy', error: errorText(e) }),
      );
    };
  }

  /** Counters and gauges. */
  stats() {
    return this.#live().metrics();
  }

  /** Stop periodic mode and free the wasm memory now; any later use throws. */
  dispose() {
    this.stop();
    const h = this.#raw;
    if (h === null) return;
    this.#raw = null;
    h.free();
  }

  [DISPOSE]() {
    this.dispose();
  }
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(text);
}
