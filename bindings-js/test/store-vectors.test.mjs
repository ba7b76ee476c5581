// Every `sharedRateLimit` vector and every `gcra` rate-limit vector (checks only), replayed
// through tripwire/raw's SharedLimiter, and every `fleet` vector, replayed through N low-level
// pipelines (RawPipeline's step protocol: begin, poll, report, the store step's request and
// reportStore) sharing a breaker, all with tripwire/redis's RedisStore + the real scripts on a
// private redis-server (scripts/ci/test-js.sh starts it: TRIPWIRE_REDIS_URL), the scripts told
// to use the vector's clock. The meaning is the Rust reference runners'
// (core/tests/vectors/shared.rs, fleet.rs). FLUSHALL before each vector; the scripts are never
// flushed, so the whole run sends exactly one EVAL per script (its first request's NOSCRIPT).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';
import { SharedLimiter, raw, out, CALL, KIND, TICKET, KINDS, STATES, storeRequestOf, encodeStoreReply } from 'tripwire/raw';
import { RedisStore } from 'tripwire/redis';
import { check } from './vector-runner.js';

const URL_ = process.env.TRIPWIRE_REDIS_URL;
const skip = URL_ ? false : 'TRIPWIRE_REDIS_URL is unset: no redis-server to replay the vectors on';
if (skip && process.env.TRIPWIRE_REQUIRE_REDIS) throw new Error('Redis is required here (TRIPWIRE_REDIS_URL)');

const dir = fileURLToPath(new URL('../../tests/vectors/', import.meta.url));
const vectors = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ file: f, v: JSON.parse(readFileSync(dir + f, 'utf8')) }));

const isGcra = (v) => v.kind === 'rateLimit' && (Array.isArray(v.config) ? v.config : [v.config]).every((l) => l.algorithm === 'gcra');
const shared = vectors.filter(({ v }) => v.kind === 'sharedRateLimit');
const gcra = vectors.filter(({ v }) => isGcra(v));
const fleet = vectors.filter(({ v }) => v.kind === 'fleet');

/** A decision as the vectors write it (`retryAfter` null when none; `sent`: a request went out). */
function asVector(d, sent) {
  return {
    allowed: d.allowed,
    wait: d.wait,
    retryAfter: d.allowed || d.retryAfter === Infinity ? null : d.retryAfter,
    source: d.source,
    sent,
  };
}

/** What the host reports for a step: the store's reply, or the failure the step names. */
async function replyFor(step, request, store) {
  switch (step.reply ?? 'store') {
    case 'store':
      return store.run(request);
    case 'timeout':
      return 'timeout';
    case 'unavailable':
      return 'unavailable';
    case 'failed':
      return { failed: 'WRONGTYPE Operation against a key' };
    default:
      throw new Error(`unknown reply ${step.reply}`);
  }
}

async function sharedCheck(l, step, key, store) {
  const now = step.at ?? 0;
  const r = l.check(key, now, step.cost ?? 1);
  if (typeof r !== 'number') return asVector(r, false);
  const request = l.request(r);
  assert.ok(request !== undefined, 'a sent request is readable');
  const reply = await replyFor(step, request, store);
  return asVector(l.reply(r, reply, now), true);
}

async function runShared(v, store) {
  assert.ok(v.description, 'a vector needs a description');
  const l = new SharedLimiter(v.config, { seed: v.seed ?? 0 });
  const events = [];
  l.on('*', (e) => events.push(e));
  l.useHostClock(true);
  try {
    for (const [i, step] of v.steps.entries()) {
      const ctx = `step ${i} (${step.op})`;
      let actual;
      switch (step.op) {
        case 'check':
          actual = await sharedCheck(l, step, step.key ?? '', store);
          break;
        case 'storeState':
          actual = l.storeState();
          break;
        case 'metrics':
          actual = l.metrics();
          break;
        case 'events':
          check(step.expect, events.splice(0), ctx);
          continue;
        default:
          throw new Error(`${ctx}: unknown op ${step.op}`);
      }
      if (step.expect !== undefined) check(step.expect, actual, ctx);
    }
  } finally {
    l.dispose();
  }
}

async function replayGcra(v, store) {
  const config = { rateLimit: v.config, store: { key: `vectors:${v.name}` } };
  const l = new SharedLimiter(config, { seed: 0 });
  l.useHostClock(true);
  try {
    for (const [i, step] of v.steps.entries()) {
      if (step.op !== 'check') continue;
      check(step.expect, await sharedCheck(l, step, '', store), `shared step ${i} (check)`);
    }
  } finally {
    l.dispose();
  }
}

// RawPipeline result codes (bindings-js/src/pipeline.rs, store.rs): the step in the low bits.
const STEP_MASK = 7;
const ATTEMPT = 0;
const DONE = 3;
const FAIL = 4;
const MISUSE = 5;
const STORE = 7;
const OUTCOMES = { success: 0, failure: 1 };
/** The most steps one call of a fleet vector may take (as the reference runner). */
const CALL_STEPS = 16;

/**
 * One call through `p` at the step's `at`, every store step answered by `store` and the
 * attempt (if one runs) ending with the step's `outcome` (not retryable, no hint):
 * `{result: "ok" | "failed" | <error kind>, requests: <store requests carried>}`.
 */
async function fleetCall(p, step, store, ctx) {
  const now = step.at ?? 0;
  const outcome = OUTCOMES[step.outcome ?? 'success'];
  if (outcome === undefined) throw new Error(`${ctx}: unknown outcome ${step.outcome}`);
  p.begin(now, NaN);
  const index = out()[CALL];
  const generation = out()[CALL + 1];
  let requests = 0;
  let code = p.poll(index, generation, now);
  for (let i = 0; i < CALL_STEPS; i++) {
    const o = out();
    switch (code & STEP_MASK) {
      case STORE: {
        requests++;
        const id = o[TICKET];
        const fields = p.storeRequest(id);
        assert.ok(fields !== undefined, `${ctx}: a store step names its request`);
        const reply = await store.run(storeRequestOf(id, fields));
        code = p.reportStore(index, generation, ...encodeStoreReply(reply), now);
        break;
      }
      case ATTEMPT:
        code = p.report(index, generation, outcome, false, NaN, now);
        break;
      case DONE:
        return { result: 'ok', requests };
      case FAIL: {
        const kind = KINDS[o[KIND]];
        return { result: kind === 'failure' ? 'failed' : kind, requests };
      }
      case MISUSE:
        throw new Error(`${ctx}: ${p.lastError()}`);
      default:
        throw new Error(`${ctx}: unexpected step code ${code}`);
    }
  }
  throw new Error(`${ctx}: a call did not end within ${CALL_STEPS} steps`);
}

/**
 * A `fleet` vector: `instances` low-level pipelines (host seeds 1..N, the store scripts on the
 * host's clock unless `hostClock` is false, as in production) whose store steps `store`
 * answers.
 */
async function runFleet(v, store, { hostClock = true } = {}) {
  assert.ok(v.description, 'a vector needs a description');
  const n = v.instances;
  assert.ok(Number.isInteger(n) && n >= 1, `instances: must be a positive whole number, got ${n}`);
  const pipelines = [];
  try {
    for (let i = 0; i < n; i++) {
      const p = new raw.RawPipeline(v.config, 0, i + 1, `instance-${i}`);
      p._useStoreHostClock(hostClock);
      pipelines.push(p);
    }
    for (const [i, step] of v.steps.entries()) {
      const ctx = `step ${i} (${step.op})`;
      const k = step.instance;
      if (!Number.isInteger(k)) throw new Error(`${ctx}: instance`);
      const p = pipelines[k];
      if (p === undefined) throw new Error(`${ctx}: no instance ${k}`);
      let actual;
      switch (step.op) {
        case 'call':
          actual = await fleetCall(p, step, store, ctx);
          break;
        case 'state': {
          const s = p.breakerState();
          if (s < 0) throw new Error(`${ctx}: no breaker`);
          actual = STATES[s];
          break;
        }
        case 'share':
          actual = p.stats().share;
          break;
        default:
          throw new Error(`${ctx}: unknown op ${step.op} for fleet`);
      }
      check(step.expect, actual, `${ctx} (instance ${k})`);
    }
  } finally {
    for (const p of pipelines) p.free();
  }
}

/** The store requests a fleet vector says its calls carry. */
const fleetRequests = (v) => v.steps.reduce((n, s) => n + (s.op === 'call' ? s.expect.requests : 0), 0);

/** `store`, counting the EVALs (after a NOSCRIPT) each script needed; requests run one at a time. */
function countingEvals(store) {
  const evals = {};
  return {
    evals,
    async run(request) {
      const before = store.evals;
      const reply = await store.run(request);
      if (store.evals > before) evals[request.script] = (evals[request.script] ?? 0) + store.evals - before;
      return reply;
    },
  };
}

test('the shared and fleet vectors replay through the Redis scripts', { skip, timeout: 30_000 }, async (t) => {
  assert.ok(shared.length >= 6 && gcra.length >= 3, `vectors missing: ${shared.length} shared, ${gcra.length} gcra`);
  assert.ok(fleet.length >= 3, `fleet vectors missing: ${fleet.length}`);
  const client = new Redis(URL_, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  const admin = new Redis(URL_, { lazyConnect: true });
  await Promise.all([client.connect(), admin.connect()]);
  const redisStore = new RedisStore(client);
  const store = countingEvals(redisStore);
  let fleetSent = 0;
  try {
    await admin.script('FLUSH'); // the first request of each script must meet NOSCRIPT
    for (const { file, v } of [...shared, ...gcra, ...fleet]) {
      await t.test(file, async () => {
        await admin.flushall(); // each vector starts from an empty store (FLUSHALL keeps scripts)
        const sent = redisStore.sent;
        if (v.kind === 'fleet') {
          await runFleet(v, store);
          // Every store step really went to Redis, and left the shared breaker's keys.
          assert.equal(redisStore.sent - sent, fleetRequests(v), 'requests sent to Redis, as the vector counts');
          assert.ok((await admin.keys('tw:*')).length > 0, 'the shared breaker left its keys in Redis');
          fleetSent += redisStore.sent - sent;
        } else if (v.kind === 'sharedRateLimit') {
          await runShared(v, store);
        } else {
          await replayGcra(v, store);
        }
      });
    }
    assert.deepEqual(store.evals, { gcra: 1, breaker: 1 }, 'exactly one EVAL per script: every other request is an EVALSHA');
    assert.equal(redisStore.evals, 2);
    assert.equal(redisStore.timeouts + redisStore.unavailable + redisStore.failed, 0, 'the store itself never failed');
    assert.ok(fleetSent >= 20, `fleet requests went to Redis (${fleetSent})`);
    assert.ok(redisStore.sent > 20 + fleetSent, `requests went to Redis (${redisStore.sent})`);
  } finally {
    client.disconnect();
    admin.disconnect();
  }
});

test('the runner catches a difference (a wrong expectation fails against Redis too)', { skip }, async () => {
  const client = new Redis(URL_, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  await client.connect();
  try {
    await client.flushall();
    const { v } = shared.find(({ file }) => file === 'shared-store-decides-and-caches.json');
    const wrong = structuredClone(v);
    const step = wrong.steps.find((s) => s.op === 'check' && s.expect?.source === 'store');
    step.expect.allowed = !step.expect.allowed;
    await assert.rejects(runShared(wrong, new RedisStore(client)), /expected/);
  } finally {
    client.disconnect();
  }
});

/** The fleet vector `name`, with a store on its own connection, FLUSHALL first. */
async function withFleet(name, fn) {
  const found = fleet.find(({ file }) => file === `${name}.json`);
  assert.ok(found, `no vector ${name}`);
  const client = new Redis(URL_, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  await client.connect();
  try {
    await client.flushall();
    await fn(structuredClone(found.v), new RedisStore(client));
  } finally {
    client.disconnect();
  }
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (const [name, index, field, wrong] of [
  // A call's result: instance 2 adopts the fleet's open at 1200 ms.
  ['fleet-signal-quorum-one-prober', 13, 'result', 'ok'],
  // The store requests a call carried: A's trips carry none before its next flush.
  ['fleet-signal-quorum-one-prober', 3, 'requests', 1],
  // A share metric: B was refused the probe lease.
  ['fleet-signal-failed-probe-reopens', 13, 'probesDenied', 0],
  // The fleet window's sums, as instance 1 last read them.
  ['fleet-aggregate-quorum-of-reporters', 36, 'fleetFailures', 15],
]) {
  test(`the fleet runner catches a wrong ${field} at its step (${name} step ${index})`, { skip }, async () => {
    await withFleet(name, async (v, store) => {
      const step = v.steps[index];
      assert.ok(field in step.expect && step.expect[field] !== wrong, JSON.stringify(step));
      step.expect[field] = wrong;
      const where = `step ${index} (${step.op}) (instance ${step.instance}).${field}: expected ${JSON.stringify(wrong)}`;
      await assert.rejects(runFleet(v, store), { message: new RegExp(`^${escape(where)}`) });
    });
  });
}

test('the fleet runner catches a wrong breaker state', { skip }, async () => {
  await withFleet('fleet-signal-quorum-one-prober', async (v, store) => {
    const step = v.steps[14];
    assert.deepEqual([step.op, step.instance, step.expect], ['state', 2, 'open']);
    step.expect = 'closed';
    await assert.rejects(runFleet(v, store), { message: 'step 14 (state) (instance 2): expected "closed", got "open"' });
  });
});

test('the fleet vectors need the host-clock hook: on the store clock they differ', { skip }, async () => {
  // On Redis's own clock the vectors' seconds-long open periods have not passed a few ms into
  // the run: a probe the vector expects to be granted is refused (the hook changes something).
  await withFleet('fleet-signal-failed-probe-reopens', async (v, store) => {
    await assert.rejects(runFleet(v, store, { hostClock: false }), /expected/);
  });
});
