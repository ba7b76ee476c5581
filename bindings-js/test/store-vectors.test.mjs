// Every `sharedRateLimit` vector and every `gcra` rate-limit vector (checks only), replayed
// through tripwire/raw's SharedLimiter + tripwire/redis's RedisStore + the real script on a
// private redis-server (scripts/ci/test-js.sh starts it: TRIPWIRE_REDIS_URL), with the script
// told to use the vector's clock. The meaning is the Rust reference runner's
// (core/tests/vectors/shared.rs). FLUSHALL before each vector; the script is never flushed,
// so the whole run sends exactly one EVAL (the first request's NOSCRIPT).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';
import { SharedLimiter } from 'tripwire/raw';
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

test('the shared vectors replay through the Redis script', { skip, timeout: 30_000 }, async (t) => {
  assert.ok(shared.length >= 6 && gcra.length >= 3, `vectors missing: ${shared.length} shared, ${gcra.length} gcra`);
  const client = new Redis(URL_, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  const admin = new Redis(URL_, { lazyConnect: true });
  await Promise.all([client.connect(), admin.connect()]);
  const store = new RedisStore(client);
  try {
    await admin.script('FLUSH');
    for (const { file, v } of [...shared, ...gcra]) {
      await t.test(file, async () => {
        await admin.flushall();
        await (v.kind === 'sharedRateLimit' ? runShared(v, store) : replayGcra(v, store));
      });
    }
    assert.equal(store.evals, 1, 'exactly one EVAL: every other request is an EVALSHA');
    assert.equal(store.timeouts + store.unavailable + store.failed, 0, 'the store itself never failed');
    assert.ok(store.sent > 20, `requests went to Redis (${store.sent})`);
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
