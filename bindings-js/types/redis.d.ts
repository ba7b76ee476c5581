// Types for `tripwire/redis`: the store adapter of a shared rate limit (SCALE-OUT.md).

/**
 * What the core asks a store to run, once: `EVALSHA sha1 keys.length ...keys ...args` (and,
 * only after its NOSCRIPT, `EVAL source ...`). `timeout` is in ms; `resendSafe` says whether
 * it may be sent again after a timeout or a dropped connection (a state change may not).
 */
export interface StoreRequest {
  readonly id: number;
  /** The script's name ("gcra"). */
  readonly script: string;
  readonly sha1: string;
  /** The Lua source (for EVAL after a NOSCRIPT). */
  readonly source: string;
  readonly keys: string[];
  readonly args: string[];
  readonly timeout: number;
  readonly resendSafe: boolean;
}

/**
 * What came back: the script's array of integers; "timeout" (no reply in time); "unavailable"
 * (no connection, or it dropped); "noScript" (NOSCRIPT even after EVAL); or `{failed}`, any
 * other error reply (CROSSSLOT, NOPERM, WRONGTYPE...: a deployment mistake, which does not open
 * the store breaker).
 */
export type StoreReply = number[] | 'timeout' | 'unavailable' | 'noScript' | { failed: string };

/**
 * Anything that runs store requests. A Pipeline enforces the request's timeout around a store
 * of one's own; a `run` that throws or rejects is a failure.
 */
export interface Store {
  run(request: StoreRequest): Promise<StoreReply> | StoreReply;
}

type AnyFunction = (...args: any[]) => unknown;

/**
 * An ioredis client created with `{enableOfflineQueue: false, maxRetriesPerRequest: 0}`, or a
 * node-redis (v4+) client created with `{disableOfflineQueue: true}`; checked at run time.
 */
export type RedisClient = { evalsha: AnyFunction; eval: AnyFunction; call: AnyFunction } | { sendCommand: AnyFunction; evalSha: AnyFunction };

/**
 * Runs store requests through the user's own Redis client (tripwire never connects by itself):
 * EVALSHA; EVAL once on NOSCRIPT; never resent; the request's timeout enforced with one timer
 * per store. A client that would queue or retry a request is refused with a TypeError naming
 * the setting.
 */
export declare class RedisStore implements Store {
  constructor(client: RedisClient);
  /** Whether `value` is an ioredis or node-redis client (its settings are checked by the constructor). */
  static accepts(value: unknown): boolean;
  /** Run `request` once; resolves with its reply, never rejects. */
  run(request: StoreRequest): Promise<StoreReply>;
  /** Requests run (each written once). */
  readonly sent: number;
  /** EVALs sent after a NOSCRIPT. */
  readonly evals: number;
  /** Requests that got no reply within their timeout. */
  readonly timeouts: number;
  /** Requests that found no connection, or lost it. */
  readonly unavailable: number;
  /** Error replies (`{failed}`). */
  readonly failed: number;
}
