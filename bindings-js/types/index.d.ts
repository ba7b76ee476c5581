// Types for the `tripwire` npm package (bindings-js/js). Times are milliseconds.
import type { RedisClient, RedisStore, Store } from './redis.js';

/** A monotonic clock: `now()` in ms, `sleep(ms, signal)` resolving after `ms` (rejecting on abort). */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The host's clock: `performance.now()` and `setTimeout`, looked up at each use. */
export declare const systemClock: Clock;

/**
 * What a failure means to a policy: `true` a retryable failure, `false` a failure that is not
 * retried (the breaker still counts it), `"ignore"` the caller's fault (a 4xx: neither retried
 * nor counted by the breaker).
 */
export type Verdict = boolean | 'ignore';

/** Constructor options shared by every policy object. */
export interface PolicyOptions {
  /** The clock to read (default: `systemClock`). */
  clock?: Clock;
}

export interface PipelineOptions extends PolicyOptions {
  /**
   * Classifies a thrown error (or a returned non-ok `Response`); default `defaultRetryable`:
   * 5xx, 429, network error codes and fetch's network TypeError retry, other 4xx are ignored.
   */
  retryable?: (error: unknown) => Verdict;
  /** Labels this pipeline's Prometheus metrics (default "default"). */
  name?: string;
  /**
   * Runs the store requests of a config with `store` (a rate limit shared by every instance
   * with the same `store.key`): your own ioredis client (`{enableOfflineQueue: false,
   * maxRetriesPerRequest: 0}`), node-redis client (`{disableOfflineQueue: true}`), a
   * `RedisStore` (tripwire/redis), or any `{run(request)}`. Without it, a store request is
   * "unavailable" and `store.onUnavailable` decides (`local`: rate/N, `allow`, `deny`).
   * Node only: the browser module (the `browser` and `default` export conditions) has no store,
   * and throws an `Error` with code `ERR_TRIPWIRE_NO_STORE` when given one.
   * Store timeouts run on the real clock (`performance.now()`), whatever `clock` is.
   */
  store?: RedisClient | Store;
}

/** The argument a protected function receives. */
export interface AttemptContext {
  /** Aborted when this attempt times out (reason: a TimeoutError) or the caller's signal aborts. */
  readonly signal: AbortSignal;
  /** The attempt number, 1 for the first. */
  readonly attempt: number;
}

export type Fallback<T> = T | ((error: unknown) => T | Promise<T>);

export interface ExecuteOptions<T> {
  /** Cancels the whole call: a queued call leaves the queue, a running attempt is aborted. */
  signal?: AbortSignal;
  /** The call's deadline: ms on the pipeline's clock (`pipeline.clock.now() + 500`), or a Date. */
  deadline?: number | Date;
  /** Used when the call fails with a kind the config's `fallback.on` lists (default: all); a list is tried in order. */
  fallback?: Fallback<T> | Fallback<T>[];
}

export type BreakerState = 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled';

export type ErrorKind =
  | 'circuitOpen'
  | 'bulkheadFull'
  | 'queueTimeout'
  | 'rateLimited'
  | 'timeout'
  | 'retriesExhausted'
  | 'budgetExhausted'
  | 'deadlineExceeded'
  | 'failure'
  | 'invalidConfig';

/** Events every policy object emits (`on(type, listener)`; `"*"` for all). */
export type PolicyEvent =
  | { type: 'stateChanged'; at: number; from: BreakerState; to: BreakerState }
  | { type: 'rejected'; at: number; reason: ErrorKind; retryAfter?: number }
  | { type: 'retryScheduled'; at: number; attempt: number; delay: number }
  | { type: 'gaveUp'; at: number; reason: ErrorKind; attempts: number }
  | { type: 'queued'; at: number; ticket: number }
  | { type: 'woken'; at: number; ticket: number }
  /** The breaker around a shared rate limit's store: `open` while `store.onUnavailable` decides. */
  | { type: 'storeStateChanged'; at: number; from: BreakerState; to: BreakerState };

export type PolicyEventType = PolicyEvent['type'];

declare class Emitter<E extends { type: string }> {
  on<K extends E['type']>(type: K, listener: (event: Extract<E, { type: K }>) => void): this;
  on(type: '*', listener: (event: E) => void): this;
  off(type: E['type'] | '*', listener: (event: never) => void): this;
}

/** A config as an object or as JSON text (DESIGN.md §3; durations are ms numbers or "250ms"-style strings). */
export type Config = object | string;

export interface PipelineStats {
  calls: number;
  succeeded: number;
  failed: Record<Exclude<ErrorKind, 'invalidConfig'>, number>;
  cancelled: number;
  attempts: number;
  inFlight: number;
  eventsDropped: number;
  breaker: Record<string, number | string> | null;
  bulkhead: Record<string, number> | null;
  rateLimit: Record<string, number> | null;
  retry: Record<string, number> | null;
  budgetTokens: number | null;
  /** The shared rate limit's store metrics, with a `store` config. */
  store?: StoreMetrics | null;
  /** The shared breaker's counters, with `circuitBreaker.share`. */
  share?: ShareMetrics | null;
  /** The breaker's state, or null without one. */
  state: BreakerState | null;
}

/** A shared rate limit's counters (decisions by source), the store breaker's state and the fallback's N. */
export interface StoreMetrics {
  requests: number;
  storeAllowed: number;
  storeWaited: number;
  storeDenied: number;
  cacheDenied: number;
  fallbackAllowed: number;
  fallbackDenied: number;
  timeouts: number;
  unavailable: number;
  errors: number;
  inFlight: number;
  storeState: BreakerState;
  instances: number;
}

/** A shared breaker's counters (`circuitBreaker.share`): what this instance sent and adopted, and the fleet as last read. */
export interface ShareMetrics {
  /** Requests emitted (syncs, votes, probes, results). */
  requests: number;
  /** Local trips sent as votes. */
  votes: number;
  /** Probe leases this instance got. */
  probesGranted: number;
  /** Probes refused because another instance holds the lease or the fleet is still open. */
  probesDenied: number;
  /** Times this instance adopted the fleet's open state. */
  adoptedOpen: number;
  /** Times this instance adopted the fleet's recovery (closed). */
  adoptedClosed: number;
  /** Times the store's epoch changed (it lost the shared state). */
  epochChanges: number;
  /** Replies that were timeouts, unavailable or errors. */
  failed: number;
  /** Aggregate mode: the fleet window's calls, failures and reporting instances, as last read. */
  fleetCalls: number;
  fleetFailures: number;
  fleetReporters: number;
  /** The fleet's state as last seen. */
  fleetState: BreakerState;
}

/** The policies of one named entry around a call: rateLimit, bulkhead, circuitBreaker, retry, timeout, fallback. */
export declare class Pipeline extends Emitter<PolicyEvent> {
  constructor(config?: Config, options?: PipelineOptions);
  readonly name: string;
  readonly clock: Clock;
  /** What runs the store requests: the RedisStore made for a client (with its counters), the `store` given, or null. */
  readonly store: RedisStore | Store | null;
  /** The breaker's state, or null without a circuit breaker. */
  readonly state: BreakerState | null;
  /** The store's last error reply (CROSSSLOT, NOPERM, WRONGTYPE...): the shared rate limit's, else the shared breaker's; null when none. */
  readonly storeLastError: string | null;
  execute<T>(fn: (context: AttemptContext) => T | Promise<T>, options?: ExecuteOptions<T>): Promise<T>;
  forceOpen(): void;
  disable(): void;
  reset(): void;
  stats(): PipelineStats;
  /** Prometheus text exposition, labelled `pipeline="<name>"`. */
  prometheus(): string;
  reconfigure(config: Config): void;
  toJSON(): { name: string; circuitBreaker: BreakerSnapshot | null };
  restore(json: { circuitBreaker: BreakerSnapshot | null } | BreakerSnapshot | string): void;
  dispose(): void;
  [Symbol.dispose](): void;
}

/** A breaker's state as plain JSON (the core's snapshot). */
export interface BreakerSnapshot {
  state: BreakerState;
  openStreak: number;
  openRemaining?: number;
  consecutiveFailures: number;
  halfOpenSuccesses: number;
  window?: unknown;
}

export interface BreakerOptions extends PolicyOptions {
  retryable?: (error: unknown) => Verdict;
}

export declare class CircuitBreaker extends Emitter<PolicyEvent> {
  constructor(config?: Config, options?: BreakerOptions);
  readonly state: BreakerState;
  /** When the open period ends (ms on the breaker's clock), or undefined when not open. */
  readonly openUntil: number | undefined;
  execute<T>(fn: (context: AttemptContext) => T | Promise<T>, options?: { signal?: AbortSignal }): Promise<T>;
  forceOpen(): void;
  disable(): void;
  reset(): void;
  stats(): Record<string, number | string>;
  toJSON(): BreakerSnapshot;
  restore(snapshot: BreakerSnapshot | string): void;
  dispose(): void;
  [Symbol.dispose](): void;
}

/** A rate-limit decision (ms): `wait > 0` means "go after waiting" (reserved by `maxWait`); `retryAfter` is Infinity when the cost can never pass. */
export interface RateDecision {
  allowed: boolean;
  retryAfter: number;
  wait: number;
}

export declare class RateLimiter extends Emitter<PolicyEvent> {
  constructor(config: Config | object[], options?: PolicyOptions);
  check(cost?: number): RateDecision;
  execute<T>(fn: (context: AttemptContext) => T | Promise<T>, options?: { signal?: AbortSignal }): Promise<T>;
  readonly available: number;
  stats(): Record<string, number>;
  dispose(): void;
  [Symbol.dispose](): void;
}

export declare class KeyedRateLimiter extends Emitter<PolicyEvent> {
  constructor(config: Config, options?: PolicyOptions);
  check(key: string, cost?: number): RateDecision;
  execute<T>(key: string, fn: (context: AttemptContext) => T | Promise<T>, options?: { signal?: AbortSignal }): Promise<T>;
  readonly size: number;
  stats(): Record<string, number>;
  dispose(): void;
  [Symbol.dispose](): void;
}

export declare class Bulkhead {
  constructor(config?: Config, options?: PolicyOptions & { name?: string });
  execute<T>(fn: (context: AttemptContext) => T | Promise<T>, options?: { signal?: AbortSignal; deadline?: number | Date }): Promise<T>;
  on<K extends PolicyEventType>(type: K, listener: (event: Extract<PolicyEvent, { type: K }>) => void): this;
  off(type: PolicyEventType | '*', listener: (event: never) => void): this;
  stats(): Record<string, number>;
  dispose(): void;
  [Symbol.dispose](): void;
}

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';
export type CheckStatus = 'pending' | 'healthy' | 'unhealthy';

export interface CheckOptions {
  timeout?: number | string;
  critical?: boolean;
  interval?: number | string;
  failureThreshold?: number;
  successThreshold?: number;
}

export interface HealthReport {
  status: HealthStatus;
  timestamp: string;
  checks: Record<
    string,
    { status: CheckStatus; critical: boolean; latencyMs: number | null; error: string | null; consecutiveFailures: number; consecutiveSuccesses: number }
  >;
  breakers: Record<string, { state: BreakerState }>;
}

export type HealthEvent =
  | { type: 'checkChanged'; at: number; check: string | null; from: CheckStatus; to: CheckStatus }
  | { type: 'timedOut'; at: number; check: string | null }
  | { type: 'statusChanged'; at: number; from: HealthStatus; to: HealthStatus };

export declare class HealthChecker extends Emitter<HealthEvent> {
  constructor(config?: { checks?: Record<string, CheckOptions> } | string, options?: PolicyOptions);
  register(name: string, fn: (context: { signal: AbortSignal }) => unknown, options?: CheckOptions): this;
  unregister(name: string): boolean;
  addBreaker(name: string, breaker: CircuitBreaker | Pipeline): this;
  removeBreaker(name: string): boolean;
  readonly status: HealthStatus;
  /** Run every check now; resolves with the report. */
  check(): Promise<HealthReport>;
  /**
   * Run the checks whose interval has come; resolves, once they have settled, with the ms
   * until the next one is due (0 when one already is), or null without checks.
   */
  runDue(): Promise<number | null>;
  /**
   * Run due checks on their own: one timer on the clock, armed at the next due time. On the
   * system clock it never keeps Node's process alive. Until `stop()` or `dispose()`.
   */
  start(): this;
  /** End periodic mode; checks already running finish and report. */
  stop(): this;
  /** The report as of the last results; no check is run. */
  report(): HealthReport;
  /** `(req, res)` for node:http and Express: the report as JSON, 200 or 503. */
  healthHandler(): (req: unknown, res: { statusCode: number; setHeader(name: string, value: string): unknown; end(body: string): unknown }) => void;
  stats(): Record<string, number>;
  /** Stops periodic mode and frees the wasm memory. */
  dispose(): void;
  [Symbol.dispose](): void;
}

export declare class Policies {
  get(name: string): Pipeline;
  names(): string[];
  dispose(): void;
  [Symbol.dispose](): void;
}

/** A policy file `{seed?, policies: {name: pipelineConfig}}` as an object or JSON text. */
export declare function loadPolicies(objectOrJsonText: Config, options?: PipelineOptions): Policies;

export declare function defaultRetryable(error: unknown): Verdict;
export declare function parseRetryAfter(value: string, nowMs?: number): number;

export interface TripwireErrorOptions {
  retryAfter?: number;
  attempts?: number;
  cause?: unknown;
}

export declare class TripwireError extends Error {
  constructor(message?: string, options?: TripwireErrorOptions & { code?: string });
  readonly code: ErrorKind | string;
  /** When the same call could pass (ms), where known. */
  readonly retryAfter: number | undefined;
  /** Attempts made, the first included (0 when refused before any). */
  readonly attempts: number;
}
export declare class CircuitOpenError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'circuitOpen';
}
export declare class BulkheadFullError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'bulkheadFull';
}
export declare class QueueTimeoutError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'queueTimeout';
}
export declare class RateLimitedError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'rateLimited';
}
export declare class TimeoutError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'timeout';
}
export declare class RetriesExhaustedError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'retriesExhausted';
  /** The last attempt's error. */
  readonly cause: unknown;
}
export declare class BudgetExhaustedError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'budgetExhausted';
}
export declare class DeadlineExceededError extends TripwireError {
  constructor(message?: string, options?: TripwireErrorOptions);
  readonly code: 'deadlineExceeded';
}
export declare class ConfigError extends TripwireError {
  constructor(message: string, issues?: { path: string; reason: string }[]);
  readonly code: 'invalidConfig';
  /** Every problem found; `path` is the first one's (`retry.backoff.base`). */
  readonly issues: { path: string; reason: string }[];
  readonly path: string;
}
