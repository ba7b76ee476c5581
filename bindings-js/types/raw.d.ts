// The low-level WebAssembly API (wasm-bindgen classes). Not covered by semver.
import type { BreakerState, Config, StoreMetrics } from './index.js';
import type { StoreRequest, StoreReply } from './redis.js';
export * as raw from '../dist/web/tripwire_js.js';

/** The scratch buffer each decision's fields are written to. */
export declare function out(): Float64Array;
export declare const CALL: number;
export declare const ATTEMPTS: number;
export declare const TIME: number;
export declare const KIND: number;
export declare const RETRY_AFTER: number;
export declare const FALLBACK: number;
export declare const CAUSE: number;
export declare const TICKET: number;
export declare const EVENT: number;
export declare const WAKE: number;
export declare const PERMIT: number;
export declare const KINDS: readonly string[];
export declare const STATES: readonly string[];
export declare const EVENT_TYPES: readonly string[];
export declare const HEALTH_EVENT_TYPES: readonly string[];
export declare const CHECK_STATUSES: readonly string[];
export declare const HEALTH_STATUSES: readonly string[];
export declare const GIVE_UPS: readonly string[];
export declare function readEvent(code: number): { type: string; at: number; [field: string]: unknown };
export declare function readHealthEvent(code: number, nameOf: (id: number) => string | null): { type: string; at: number; [field: string]: unknown };
export declare function configInput(input: unknown): unknown;
export declare function fromNative(error: unknown): unknown;

/** A shared rate-limit decision (ms): `source` says who decided; `retryAfter` is Infinity when no time is known. */
export interface SharedDecision {
  allowed: boolean;
  wait: number;
  retryAfter: number;
  source: 'store' | 'fallback' | 'cache';
}

/**
 * The core's shared rate limiter, for hosts that drive the store themselves:
 * `new SharedLimiter({rateLimit, store, keyed?}, {seed})`. `check` answers a decision or the
 * id of a request to run once (`request(id)`, e.g. through a RedisStore) and answer
 * (`reply(id, reply, now)`). Times are ms on the caller's clock. Node only: in the browser
 * module the constructor throws an `Error` with code `ERR_TRIPWIRE_NO_STORE`.
 */
export declare class SharedLimiter {
  constructor(config: Config, options?: { seed?: number });
  check(key: string, now: number, cost?: number): SharedDecision | number;
  request(id: number): StoreRequest | undefined;
  reply(id: number, reply: StoreReply, now: number): SharedDecision;
  abandon(id: number, now: number): void;
  metrics(): StoreMetrics;
  /** The store breaker's state ("closed" while the store is used). */
  storeState(): BreakerState;
  /** The store's last error reply (CROSSSLOT, NOPERM, WRONGTYPE...), or null. */
  readonly lastError: string | null;
  /** This instance's heartbeat id. */
  readonly member: string;
  /** Let the script use the caller's `now` (conformance tests only). */
  useHostClock(on: boolean): void;
  on(type: 'storeStateChanged' | '*', listener: (event: { type: 'storeStateChanged'; at: number; from: BreakerState; to: BreakerState }) => void): this;
  off(type: 'storeStateChanged' | '*', listener: (event: never) => void): this;
  dispose(): void;
  [Symbol.dispose](): void;
}

/** The scripts a store may be asked to run (to SCRIPT LOAD at start). */
export declare function scripts(): { name: string; sha1: string; source: string }[];

/** A pipeline's store step request (`RawPipeline.storeRequest(id)`) as a StoreRequest for a store's `run`. */
export declare function storeRequestOf(id: number, fields: string | string[]): StoreRequest;
/** A store's reply as the arguments `kind, values, message` of `RawPipeline.reportStore(index, generation, kind, values, message, now)`. */
export declare function encodeStoreReply(reply: StoreReply): [number, Float64Array, string];
