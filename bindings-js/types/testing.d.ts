import type { Clock } from './index.js';

/** A manual clock for tests: time moves only through `advance`, `advanceTo` and `set`. */
export declare class FakeClock implements Clock {
  constructor(start?: number);
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Sleeps not yet resolved. */
  readonly pending: number;
  /** Move time forward, resolving due sleeps in order and letting the code they wake run. */
  advance(ms: number): Promise<void>;
  advanceTo(at: number): Promise<void>;
  /** Set the time, even backwards; resolves nothing. */
  set(ms: number): void;
}
