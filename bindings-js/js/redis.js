// tripwire/redis: runs tripwire's store requests (a shared rate limit's script call) through
// the user's own Redis client, ioredis or node-redis v4+. tripwire never opens a connection.
// Script-agnostic: it runs whatever request the core emits. The rules (SCALE-OUT.md):
//
// - EVALSHA; on NOSCRIPT, and only then, EVAL once (never after the request timed out).
// - Never resend: a request is written once. A timeout or a dropped connection is reported
//   as such ("timeout", "unavailable") and the late reply, if any, is ignored.
// - The client's own retries and offline queue must be off, or a request could run late or
//   twice: ioredis `{enableOfflineQueue: false, maxRetriesPerRequest: 0}`, node-redis
//   `{disableOfflineQueue: true}`. A client without them is refused with a TypeError.
// - The request's timeout is enforced here, with one timer per store (armed at the earliest
//   deadline in flight), not one per request.
// - Any other error reply (CROSSSLOT, NOPERM, WRONGTYPE...) is a deployment mistake,
//   `{failed: message}`, not unavailability.
//
// Pure JavaScript (no wasm), the same in every build.

import { Timeouts } from './timeouts.js';

function describe(value) {
  if (value === null) return 'null';
  if (typeof value !== 'object' && typeof value !== 'function') return typeof value;
  return value.constructor?.name ? `a ${value.constructor.name}` : 'an object';
}

/** Which client this is: "ioredis", "node-redis", or null. */
function clientKind(client) {
  if (client === null || (typeof client !== 'object' && typeof client !== 'function')) return null;
  if (typeof client.evalsha === 'function' && typeof client.call === 'function') return 'ioredis';
  if (typeof client.sendCommand === 'function' && typeof client.evalSha === 'function') return 'node-redis';
  return null;
}

const PREFIX = 'tripwire/redis:';

/** `send(byHash, request)` for `client`, after checking that it neither retries nor queues. */
function sender(client) {
  const kind = clientKind(client);
  if (kind === 'ioredis') {
    if (client.isCluster === true) {
      throw new TypeError(`${PREFIX} an ioredis Cluster is not supported; pass a Redis client (new Redis({...}))`);
    }
    const o = client.options ?? {};
    if (o.enableOfflineQueue !== false) {
      throw new TypeError(
        `${PREFIX} the ioredis client must be created with enableOfflineQueue: false (got ${String(o.enableOfflineQueue)}): a request queued while disconnected runs after tripwire gave up on it`,
      );
    }
    if (o.maxRetriesPerRequest !== 0) {
      throw new TypeError(
        `${PREFIX} the ioredis client must be created with maxRetriesPerRequest: 0 (got ${String(o.maxRetriesPerRequest)}): a request retried after a dropped connection could count twice`,
      );
    }
    return (byHash, r) =>
      byHash ? client.evalsha(r.sha1, r.keys.length, ...r.keys, ...r.args) : client.eval(r.source, r.keys.length, ...r.keys, ...r.args);
  }
  if (kind === 'node-redis') {
    if (client.options?.disableOfflineQueue !== true) {
      throw new TypeError(
        `${PREFIX} the node-redis client must be created with disableOfflineQueue: true (got ${String(client.options?.disableOfflineQueue)}): a request queued while disconnected runs after tripwire gave up on it`,
      );
    }
    return (byHash, r) => client.sendCommand([byHash ? 'EVALSHA' : 'EVAL', byHash ? r.sha1 : r.source, String(r.keys.length), ...r.keys, ...r.args]);
  }
  throw new TypeError(`${PREFIX} expected an ioredis or node-redis (v4+) client, got ${describe(client)}`);
}

// An error reply from the server (ioredis: ReplyError; node-redis: ErrorReply and subclasses),
// as opposed to a connection problem.
function isReplyError(e) {
  if (e === null || typeof e !== 'object') return false;
  if (e.name === 'ReplyError') return true;
  for (let p = Object.getPrototypeOf(e); p !== null && p !== Error.prototype; p = Object.getPrototypeOf(p)) {
    if (p.constructor?.name === 'ErrorReply') return true;
  }
  return false;
}

function isNoScript(e) {
  return isReplyError(e) && String(e.message).startsWith('NOSCRIPT');
}

// The client's own command timeout, when the user set one (ioredis `commandTimeout`,
// node-redis `TimeoutError`): a timeout too.
function isTimeout(e) {
  return e !== null && typeof e === 'object' && (e.message === 'Command timed out' || e.constructor?.name === 'TimeoutError');
}

/** A failed command as a reply: NOSCRIPT, an error reply, a timeout, or (anything else) unavailable. */
function errorReply(e) {
  if (!isReplyError(e)) return isTimeout(e) ? 'timeout' : 'unavailable';
  if (isNoScript(e)) return 'noScript';
  return { failed: String(e.message) };
}

function valuesOf(v) {
  return Array.isArray(v) ? v : { failed: `unexpected script reply: ${typeof v}` };
}

/**
 * Runs store requests through an ioredis or node-redis (v4+) client. Counts what it did:
 * `sent` (requests run, each written once), `evals` (EVALs after a NOSCRIPT), `timeouts`,
 * `unavailable` and `failed` (error replies).
 */
export class RedisStore {
  sent = 0;
  evals = 0;
  timeouts = 0;
  unavailable = 0;
  failed = 0;
  #send;
  #timeouts = new Timeouts();
  #onTimeout = () => {
    this.timeouts++;
  };

  /** `client`: an ioredis or node-redis (v4+) client that neither retries nor queues. */
  constructor(client) {
    this.#send = sender(client);
  }

  /** Whether `value` looks like a client a RedisStore runs on (ioredis or node-redis). */
  static accepts(value) {
    return clientKind(value) !== null;
  }

  /** Run `request` once; resolves with its reply (never rejects). */
  run(request) {
    this.sent++;
    return new Promise((resolve) => {
      const entry = this.#timeouts.track(request.timeout, resolve, this.#onTimeout);
      const finish = (reply) => {
        if (entry.done) return; // timed out: the late reply is dropped
        if (reply === 'unavailable') this.unavailable++;
        else if (reply === 'timeout') this.timeouts++;
        else if (!Array.isArray(reply) && typeof reply === 'object') this.failed++;
        this.#timeouts.settle(entry, reply);
      };
      this.#call(true, request).then(
        (values) => finish(valuesOf(values)),
        (e) => {
          if (entry.done || !isNoScript(e)) return finish(errorReply(e));
          // The script is not loaded (a new or flushed server): EVAL once.
          this.evals++;
          this.#call(false, request).then(
            (values) => finish(valuesOf(values)),
            (e2) => finish(errorReply(e2)),
          );
        },
      );
    });
  }

  #call(byHash, request) {
    try {
      return Promise.resolve(this.#send(byHash, request));
    } catch (e) {
      return Promise.reject(e);
    }
  }
}
