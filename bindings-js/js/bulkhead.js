// Bulkhead: a concurrency limit with a FIFO queue. It drives a bulkhead-only pipeline, so
// parking, waking, `maxWait` and cancellation are the same code paths as in any pipeline.
import { Pipeline, DISPLAY_NAME } from './pipeline.js';
import { configInput } from './errors.js';
import { DISPOSE } from './lifecycle.js';

/** `new Bulkhead(config, {clock})`: `{maxConcurrent, maxQueue, maxWait}` (DESIGN.md §3.4). */
export class Bulkhead {
  #pipeline;

  constructor(config = {}, options = {}) {
    this.#pipeline = new Pipeline({ bulkhead: configInput(config) }, { clock: options?.clock, name: options?.name ?? 'bulkhead', [DISPLAY_NAME]: 'Bulkhead' });
  }

  /**
   * Run `fn({signal, attempt})` in a slot, waiting in the queue if needed; rejects with a
   * BulkheadFullError or QueueTimeoutError when refused. Aborting `signal` gives up the queue
   * place (or, once running, aborts `fn`'s signal).
   */
  execute(fn, options) {
    return this.#pipeline.execute(fn, options === undefined || options === null ? undefined : { signal: options.signal, deadline: options.deadline });
  }

  /** Listen to "queued", "woken" and "rejected" events. */
  on(name, listener) {
    this.#pipeline.on(name, listener);
    return this;
  }

  /** Remove a listener. */
  off(name, listener) {
    this.#pipeline.off(name, listener);
    return this;
  }

  /** The bulkhead's counters and gauges (`inFlight`, `queueDepth`, ...). */
  stats() {
    return this.#pipeline.stats().bulkhead;
  }

  /** Free the wasm memory now; calls in flight reject, and any later use throws. */
  dispose() {
    this.#pipeline.dispose();
  }

  [DISPOSE]() {
    this.dispose();
  }
}
