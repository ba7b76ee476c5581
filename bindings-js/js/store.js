// A rate limit shared through a store (SCALE-OUT.md): the store step of a Pipeline
// (`new Pipeline(config, {store: client})`), and the request and reply conversions the
// low-level SharedLimiter (shared.js) uses too. The core decides; this file moves a request to
// the user's store adapter (tripwire/redis, or any object with `run(request)`) and its reply
// back.
//
// A request: `{id, script, sha1, source, keys, args, timeout (ms), resendSafe}`.
// A reply: the script's array of integers, "timeout", "unavailable", "noScript", or
// `{failed: message}` (an error reply: CROSSSLOT, NOPERM, WRONGTYPE...).
import { raw } from './native.js';
import { RedisStore } from './redis.js';
import { Timeouts } from './timeouts.js';

// Reply kinds (bindings-js/src/store.rs).
const VALUES = 0;
const NO_SCRIPT = 1;
const TIMEOUT = 2;
const UNAVAILABLE = 3;
const FAILED = 4;
const NO_VALUES = new Float64Array(0);

/** Whether this module has the shared store: Node's does; the browser's leaves it out. */
export const HAS_STORE = typeof raw.storeScripts === 'function';

/** Throw, naming `what`, when this module has no shared store (the browser build). */
export function requireStore(what) {
  if (HAS_STORE) return;
  const e = new Error(
    `tripwire: ${what}: the browser build has no shared store (a store client runs on a server); use it from Node`,
  );
  e.code = 'ERR_TRIPWIRE_NO_STORE';
  throw e;
}

let table = null;
function scriptTable() {
  if (table === null) {
    requireStore('store scripts');
    const flat = raw.storeScripts();
    table = new Map();
    for (let i = 0; i + 2 < flat.length; i += 3) {
      table.set(flat[i + 1], Object.freeze({ name: flat[i], sha1: flat[i + 1], source: flat[i + 2] }));
    }
  }
  return table;
}

/** Every script a store may be asked to run, `[{name, sha1, source}]` (to SCRIPT LOAD at start). */
export function scripts() {
  return [...scriptTable().values()];
}

/**
 * A request as the wasm side gives it: `[sha1, timeout, resendSafe, key count, keys...,
 * args...]`, joined by NUL (an array when a field holds a NUL).
 */
export function requestOf(id, fields) {
  const s = typeof fields === 'string' ? fields.split('\0') : fields;
  const n = Number(s[3]);
  const script = scriptTable().get(s[0]);
  return {
    id,
    script: script.name,
    sha1: script.sha1,
    source: script.source,
    keys: s.slice(4, 4 + n),
    args: s.slice(4 + n),
    timeout: Number(s[1]),
    resendSafe: s[2] === '1',
  };
}

function replyKind(reply) {
  if (Array.isArray(reply)) return VALUES;
  if (reply === 'timeout') return TIMEOUT;
  if (reply === 'unavailable') return UNAVAILABLE;
  if (reply === 'noScript') return NO_SCRIPT;
  return FAILED;
}

// The script's values as numbers (anything else becomes NaN: the core calls it unreadable).
function valuesOf(reply) {
  try {
    return Float64Array.from(reply, Number);
  } catch {
    return Float64Array.of(NaN);
  }
}

function messageOf(reply) {
  if (reply !== null && typeof reply === 'object' && 'failed' in reply) return String(reply.failed);
  return `unreadable store reply: ${reply === null ? 'null' : typeof reply}`;
}

/** Hand `reply` to `report(kind, values, message)` (a wasm method taking the three). */
export function encode(reply) {
  const kind = replyKind(reply);
  return [kind, kind === VALUES ? valuesOf(reply) : NO_VALUES, kind === FAILED ? messageOf(reply) : ''];
}

function describe(value) {
  if (value === null) return 'null';
  if (typeof value !== 'object' && typeof value !== 'function') return typeof value;
  return value.constructor?.name ? `a ${value.constructor.name}` : 'an object';
}

/** A user's own store (`{run(request)}`), with the request's timeout enforced here. */
class OwnStore {
  #store;
  #timeouts = new Timeouts();

  constructor(store) {
    this.#store = store;
  }

  get target() {
    return this.#store;
  }

  run(request) {
    let reply;
    try {
      reply = Promise.resolve(this.#store.run(request));
    } catch (e) {
      reply = Promise.reject(e);
    }
    const failed = (e) => ({ failed: `store.run threw: ${e instanceof Error ? e.message : String(e)}` });
    return this.#timeouts.race(reply.then(undefined, failed), request.timeout);
  }
}

/** The `store` option: a client (wrapped in a RedisStore), a RedisStore, or `{run(request)}`. */
export function storeOf(store) {
  if (store === undefined || store === null) return null;
  requireStore('options.store');
  if (store instanceof RedisStore) return store;
  if (RedisStore.accepts(store)) return new RedisStore(store);
  if (typeof store === 'object' && typeof store.run === 'function') return new OwnStore(store);
  throw new TypeError(
    `options.store must be an ioredis or node-redis client, a RedisStore (tripwire/redis) or an object with run(request), got ${describe(store)}`,
  );
}

/** What `pipeline.store` shows: the RedisStore, the user's own store, or null. */
export function shownStore(store) {
  return store instanceof OwnStore ? store.target : store;
}

/**
 * The reply to a pipeline's store step `id`, run by `store` ("unavailable" without one, so
 * `store.onUnavailable` decides). Resolves early when `signal` aborts (the caller cancels).
 */
export function runStoreStep(store, p, id, signal) {
  if (store === null) return 'unavailable';
  const strings = p.storeRequest(id);
  if (strings === undefined) return 'unavailable';
  const reply = store.run(requestOf(id, strings));
  if (signal === null) return reply;
  if (signal.aborted) return 'unavailable';
  return new Promise((resolve) => {
    const onAbort = () => resolve('unavailable');
    signal.addEventListener('abort', onAbort, { once: true });
    reply.then((r) => {
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    });
  });
}

/** Report a store step's reply to the low-level pipeline, then poll the call: its next step code. */
export function reportStoreStep(p, index, generation, reply, now) {
  const [kind, values, message] = encode(reply);
  return p.reportStore(index, generation, kind, values, message, now);
}
