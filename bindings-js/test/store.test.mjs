// A rate limit shared through Redis, as users write it: `new Pipeline(config, {store: client})`
// with their own ioredis (or node-redis) client, on the private redis-server that
// scripts/ci/test-js.sh starts (TRIPWIRE_REDIS_URL, TRIPWIRE_REDIS_PID). The outage tests
// freeze that server (SIGSTOP): store tests run one file at a time.
import { test, after } from 'node:test';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { createClient } from '@redis/client';
import { Pipeline, RateLimitedError, ConfigError, loadPolicies } from 'tripwire';
import { SharedLimiter, scripts } from 'tripwire/raw';
import { RedisStore } from 'tripwire/redis';

const URL_ = process.env.TRIPWIRE_REDIS_URL;
const PID = Number(process.env.TRIPWIRE_REDIS_PID);
const skip = URL_ && PID ? false : 'TRIPWIRE_REDIS_URL / TRIPWIRE_REDIS_PID unset: no private redis-server';
if (skip && process.env.TRIPWIRE_REQUIRE_REDIS) throw new Error('Redis is required here (TRIPWIRE_REDIS_URL)');

// What a user must set on an ioredis client for tripwire (tripwire/redis refuses it otherwise).
const SAFE = { enableOfflineQueue: false, maxRetriesPerRequest: 0 };
const clients = [];
async function ioredis(options = SAFE) {
  const c = new Redis(URL_, { ...options, lazyConnect: true });
  clients.push(c);
  await c.connect();
  return c;
}
after(() => {
  for (const c of clients) c.disconnect();
});

let unique = 0;
const key = (name) => `${name}-${process.pid}-${++unique}`;
// A store timeout of 500 ms unless a test is about timeouts: a cold first request (script
// compiled by EVAL) on a loaded CI machine can take longer than the default 25 ms.
const gcra = (rate, burst, store) => ({ rateLimit: { algorithm: 'gcra', rate, burst }, store: { timeout: '500ms', ...store } });

/** Run `n` calls one after another: `{admitted, limited, latencies (ms)}`. */
async function calls(p, n) {
  const r = { admitted: 0, limited: 0, latencies: [], retryAfters: [] };
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    try {
      await p.execute(async () => 'ok');
      r.admitted++;
    } catch (e) {
      if (!(e instanceof RateLimitedError)) throw e;
      r.limited++;
      r.retryAfters.push(e.retryAfter);
    }
    r.latencies.push(performance.now() - start);
  }
  return r;
}

/** Script calls the server received (executed or rejected), by command. */
async function received(admin) {
  const info = await admin.info('commandstats');
  const count = (cmd) => {
    const m = new RegExp(`cmdstat_${cmd}:calls=(\\d+),.*rejected_calls=(\\d+)`).exec(info);
    return m === null ? 0 : Number(m[1]) + Number(m[2]);
  };
  return { evalsha: count('evalsha'), eval: count('eval') };
}

test('a pipeline with a store admits the burst, then rejects with rateLimited and the store\'s retryAfter', { skip }, async () => {
  const p = new Pipeline(gcra('2/s', 3, { key: key('burst') }), { store: await ioredis() });
  const r = await calls(p, 5);
  assert.equal(r.admitted, 3, 'the burst');
  assert.equal(r.limited, 2);
  assert.ok(r.retryAfters[0] > 400 && r.retryAfters[0] <= 500, `the store's retry-after (one per 500 ms): ${r.retryAfters[0]}`);
  const s = p.stats().store;
  assert.equal(s.storeAllowed, 3);
  assert.equal(s.storeDenied, 1);
  assert.equal(s.cacheDenied, 1, 'the second refusal is the cached denial: no round trip');
  assert.equal(s.storeState, 'closed');
  assert.ok(p.store instanceof RedisStore);
  assert.equal(p.store.sent, 4);
  assert.equal(p.stats().failed.rateLimited, 2);
  p.dispose();
});

test('two pipelines (two instances) on one key share the limit; another key does not', { skip }, async () => {
  const config = gcra('1/s', 4, { key: key('shared') });
  const a = new Pipeline(config, { store: await ioredis() });
  const b = new Pipeline(config, { store: await ioredis() });
  const other = new Pipeline(gcra('1/s', 4, { key: key('other') }), { store: a.store });
  let admitted = 0;
  const per = [0, 0];
  for (let i = 0; i < 8; i++) {
    const r = await calls(i % 2 ? b : a, 1);
    admitted += r.admitted;
    per[i % 2] += r.admitted;
  }
  assert.equal(admitted, 4, 'one burst for both instances');
  assert.deepEqual(per, [2, 2]);
  assert.equal((await calls(other, 4)).admitted, 4, 'another key has its own burst');
  for (const p of [a, b, other]) p.dispose();
});

test('the store frozen (SIGSTOP): each call ends within the timeout plus a few ms via onUnavailable, nothing is resent, and after SIGCONT the store decides again', { skip, timeout: 20_000 }, async () => {
  const admin = await ioredis({});
  await admin.script('LOAD', scripts()[0].source);
  await admin.config('RESETSTAT');
  const TIMEOUT = 50;
  const store = (onUnavailable) => ({ key: key(onUnavailable), timeout: TIMEOUT, onUnavailable, expectedInstances: 2 });
  const pipelines = {};
  const events = {};
  for (const mode of ['local', 'deny', 'allow', 'cancel']) {
    const p = new Pipeline(gcra('10/s', 4, store(mode === 'cancel' ? 'local' : mode)), { store: await ioredis() });
    events[mode] = [];
    p.on('storeStateChanged', (e) => events[mode].push(`${e.from}->${e.to}`));
    pipelines[mode] = p;
  }
  // Warm up until the store answered (a cold call may time out on a loaded machine; a store
  // reply resets the store breaker's count), then count from there.
  const base = {};
  for (const [mode, p] of Object.entries(pipelines)) {
    for (let i = 0; i < 10 && p.stats().store.storeAllowed === 0; i++) await calls(p, 1);
    assert.equal(p.stats().store.storeAllowed, 1, `${mode}: the store answered`);
    base[mode] = { ...p.stats().store, sent: p.store.sent, storeTimeouts: p.store.timeouts };
  }
  const outage = {};
  let cancelled;
  process.kill(PID, 'SIGSTOP');
  try {
    // A caller who gives up while its store request hangs: the call ends at once, and the
    // core forgets the request.
    const ac = new AbortController();
    const start = performance.now();
    const pending = pipelines.cancel.execute(async () => 'never', { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('caller gave up')), 5);
    await assert.rejects(pending, /caller gave up/);
    cancelled = performance.now() - start;
    for (const mode of ['local', 'deny', 'allow']) outage[mode] = await calls(pipelines[mode], 6);
    outage.local.span = outage.local.latencies.reduce((x, y) => x + y, 0);
  } finally {
    process.kill(PID, 'SIGCONT');
  }
  assert.ok(cancelled < TIMEOUT, `the cancelled call ended with the abort, before the store timeout (${cancelled.toFixed(1)} ms)`);
  const c = pipelines.cancel.stats();
  assert.equal(c.cancelled, 1);
  assert.equal(c.store.inFlight, 0, 'the abandoned request is forgotten');

  for (const [mode, r] of Object.entries(outage)) {
    // The three that asked the store waited for its timeout, not longer (a few ms; the worst
    // case has room for a stall on a loaded 2-core machine); the rest did not ask.
    const asked = r.latencies.slice(0, 3).sort((x, y) => x - y);
    const shown = r.latencies.map((x) => x.toFixed(1)).join(', ');
    assert.ok(asked[0] >= TIMEOUT - 1, `${mode}: the store was given its timeout (${shown} ms)`);
    assert.ok(asked[1] < TIMEOUT + 10 && asked[2] < TIMEOUT + 100, `${mode}: ended at the ${TIMEOUT} ms timeout + a few ms (${shown} ms)`);
    assert.ok(Math.max(...r.latencies.slice(3)) < TIMEOUT, `${mode}: the store breaker open: no wait for the store (${shown} ms)`);
    const s = pipelines[mode].stats().store;
    const b = base[mode];
    assert.equal(s.timeouts - b.timeouts, 3, `${mode}: three timeouts open the store breaker`);
    assert.equal(s.requests - b.requests, 3, `${mode}: no request while the store breaker is open`);
    assert.equal(pipelines[mode].store.sent - b.sent, 3);
    assert.equal(pipelines[mode].store.timeouts - b.storeTimeouts, 3);
    assert.deepEqual(events[mode], ['closed->open']);
  }
  // local: rate/N and burst/N (burst 4, 2 instances: 2 at once, then one per 200 ms).
  const bound = 2 + Math.floor(outage.local.span / 200);
  assert.ok(outage.local.admitted >= 2 && outage.local.admitted <= bound, `local fallback admitted ${outage.local.admitted} (bound ${bound})`);
  assert.equal(outage.deny.admitted, 0);
  assert.equal(outage.allow.admitted, 6);

  // Back: after the store breaker's 500 ms, one probe goes to the store and closes it.
  await sleep(550);
  for (const mode of ['local', 'deny', 'allow']) {
    const p = pipelines[mode];
    const before = p.stats().store;
    assert.equal((await calls(p, 1)).admitted, 1, `${mode}: admitted by the store again`);
    const s = p.stats().store;
    assert.equal(s.storeAllowed, before.storeAllowed + 1, `${mode}: the store decided`);
    assert.equal(s.storeState, 'closed');
    assert.deepEqual(events[mode], ['closed->open', 'open->halfOpen', 'halfOpen->closed']);
  }
  // Each request was written once: the timed-out ones ran late (on SIGCONT), none twice.
  await sleep(50);
  const sent = Object.values(pipelines).reduce((n, p) => n + p.store.sent, 0);
  const evals = Object.values(pipelines).reduce((n, p) => n + p.store.evals, 0);
  const got = await received(admin);
  assert.equal(got.evalsha, sent, `EVALSHAs received = requests sent (${sent})`);
  assert.equal(got.eval, evals);
  for (const p of Object.values(pipelines)) p.dispose();
});

test('a connection dropped with a request in flight: ioredis (maxRetriesPerRequest: 0) does not resend it', { skip, timeout: 10_000 }, async () => {
  const admin = await ioredis({});
  const client = await ioredis();
  client.on('error', () => {});
  const store = new RedisStore(client);
  const l = new SharedLimiter(gcra('10/s', 4, { key: key('drop'), timeout: '100ms' }));
  const ask = async () => {
    const id = l.check('', performance.now());
    assert.equal(typeof id, 'number');
    return l.reply(id, await store.run(l.request(id)), performance.now());
  };
  assert.equal((await ask()).source, 'store');
  const quick = new RedisStore(await ioredis({ ...SAFE, commandTimeout: 10 }));
  await admin.config('RESETSTAT');
  process.kill(PID, 'SIGSTOP');
  try {
    assert.equal((await ask()).source, 'fallback');
    assert.equal(store.timeouts, 1);
    // A client's own command timeout (ioredis commandTimeout), shorter than the request's,
    // is a timeout too.
    const started = performance.now();
    const id = l.check('', started);
    assert.equal(await quick.run(l.request(id)), 'timeout');
    assert.ok(performance.now() - started < 90, 'at the client\'s 10 ms, before the request\'s 100 ms');
    assert.equal(quick.timeouts, 1);
    l.abandon(id, performance.now());
    // The connection drops with the EVALSHA still unanswered; ioredis reconnects.
    client.stream.destroy();
    await new Promise((resolve) => client.once('close', resolve));
  } finally {
    process.kill(PID, 'SIGCONT');
  }
  await new Promise((resolve) => (client.status === 'ready' ? resolve() : client.once('ready', resolve)));
  await sleep(50);
  const got = await received(admin);
  assert.ok(got.evalsha <= 2, `the dropped request was not sent again (${got.evalsha} EVALSHA received for 2 sent)`);
  assert.equal((await ask()).source, 'store', 'the store decides on the new connection');
  l.dispose();
});

test('a WRONGTYPE reply is a failure: the fallback decides, the store breaker stays closed', { skip }, async () => {
  const admin = await ioredis({});
  const name = key('wrongtype');
  await admin.hset(`tw:{rl:${name}:}:0`, 'field', 'value');
  const p = new Pipeline(gcra('10/s', 4, { key: name, expectedInstances: 2 }), { store: await ioredis() });
  const events = [];
  p.on('storeStateChanged', (e) => events.push(e));
  const r = await calls(p, 5);
  const s = p.stats().store;
  assert.equal(s.errors, 5, 'every reply was an error reply');
  assert.equal(s.requests, 5, 'an error reply does not open the store breaker: every call asked');
  assert.equal(s.fallbackAllowed + s.fallbackDenied, 5);
  assert.equal(r.admitted, 2, 'the local fallback: burst 4 / 2 instances');
  assert.equal(s.storeState, 'closed');
  assert.deepEqual(events, []);
  assert.equal(p.store.failed, 5);
  assert.equal(p.store.timeouts + p.store.unavailable, 0);
  assert.match(p.storeLastError, /^WRONGTYPE/, 'the deployment mistake, as the store said it');
  await admin.del(`tw:{rl:${name}:}:0`);
  await calls(p, 1);
  assert.equal(p.stats().store.storeAllowed, 1, 'the store decides once the key is fixed');
  p.dispose();
  assert.throws(() => p.storeLastError, /disposed/);
});

test('a closed port: each call is unavailable at once and onUnavailable decides; the store breaker opens', { skip }, async () => {
  const port = Number(new URL(URL_).port);
  // Nothing listens on port 1 here (a privileged port no test binds).
  const client = new Redis({ host: '127.0.0.1', port: port === 1 ? 2 : 1, ...SAFE, retryStrategy: () => 50 });
  clients.push(client);
  client.on('error', () => {});
  const p = new Pipeline(gcra('10/s', 4, { key: key('closed'), onUnavailable: 'deny' }), { store: client });
  const r = await calls(p, 5);
  assert.equal(r.admitted, 0);
  assert.ok(Math.max(...r.latencies) < 50, `unavailable at once (worst ${Math.max(...r.latencies).toFixed(1)} ms)`);
  const s = p.stats().store;
  assert.equal(s.unavailable, 3);
  assert.equal(s.requests, 3);
  assert.equal(s.storeState, 'open');
  assert.equal(p.store.unavailable, 3);
  p.dispose();
});

test('without a store client, a store config is unavailable and onUnavailable decides', async () => {
  const p = new Pipeline(gcra('10/s', 4, { key: 'no-client', expectedInstances: 2 }));
  assert.equal(p.store, null);
  assert.equal(p.storeLastError, null, 'unavailability is no error reply');
  const r = await calls(p, 4);
  assert.equal(r.admitted, 2, 'the local fallback at burst/N');
  const s = p.stats().store;
  assert.equal(s.unavailable, 3);
  assert.equal(s.storeState, 'open');
  p.dispose();
});

test('a shared breaker through Redis: two trips (quorum 2) open the fleet, and a healthy instance adopts the open at its next sync', { skip, timeout: 10_000 }, async () => {
  const name = key('fleet');
  const config = {
    circuitBreaker: {
      trip: { consecutiveFailures: 2 },
      openDuration: '30s',
      share: { mode: 'signal', quorum: 2, flush: '50ms', lease: '1s' },
    },
    store: { key: name, timeout: '500ms' },
  };
  const [a, b, c] = [await ioredis(), await ioredis(), await ioredis()].map((client) => new Pipeline(config, { store: client }));
  const fail = async (p) => {
    await assert.rejects(
      p.execute(async () => {
        throw new Error('partner down');
      }),
      /partner down/,
    );
  };
  let ran = 0;
  const ok = async () => {
    ran++;
    return 'ok';
  };
  assert.equal(await c.execute(ok), 'ok');
  assert.equal(c.stats().share.requests, 1, 'the first call syncs with the fleet');
  // A trips alone: one vote, the fleet stays closed.
  await fail(a);
  await fail(a);
  assert.equal(a.state, 'open');
  await assert.rejects(a.execute(ok), { name: 'CircuitOpenError' });
  assert.equal(a.stats().share.votes, 1);
  assert.equal(a.stats().share.fleetState, 'closed', 'one vote of the two needed');
  // B trips too: the second vote opens the fleet.
  await fail(b);
  await fail(b);
  await assert.rejects(b.execute(ok), { name: 'CircuitOpenError' });
  assert.equal(b.stats().share.votes, 1);
  assert.equal(b.stats().share.fleetState, 'open');
  // C never failed: it adopts the fleet's open at its next sync (every 50 ms, jittered).
  const before = ran;
  let rejected = null;
  for (let i = 0; i < 100 && rejected === null; i++) {
    await sleep(10);
    try {
      await c.execute(ok);
    } catch (e) {
      rejected = e;
    }
  }
  assert.equal(rejected?.name, 'CircuitOpenError', 'C adopted the fleet\'s open');
  assert.ok(rejected.retryAfter > 25_000, `the fleet's open period (${rejected.retryAfter} ms left)`);
  assert.equal(c.state, 'open');
  const share = c.stats().share;
  assert.equal(share.adoptedOpen, 1);
  assert.equal(share.votes, 0);
  assert.equal(share.failed, 0, 'every request reached Redis');
  assert.ok(ran > before || share.requests >= 2, 'C synced again');
  for (const p of [a, b, c]) {
    assert.equal(p.store.timeouts + p.store.unavailable + p.store.failed, 0);
    assert.equal(p.storeLastError, null);
    p.dispose();
  }
  const admin = await ioredis({});
  assert.ok((await admin.keys(`*${name}*`)).length > 0, 'the fleet state lives in Redis');
});

test('a policy file entry with a store: loadPolicies passes the client to its pipelines', { skip }, async () => {
  const policies = loadPolicies({ policies: { partner: gcra('1/s', 2, { key: key('file') }) } }, { store: await ioredis() });
  const r = await calls(policies.get('partner'), 3);
  assert.equal(r.admitted, 2);
  assert.equal(policies.get('partner').stats().store.storeDenied, 1);
  policies.dispose();
});

test('node-redis (v4+) clients run the same requests', { skip }, async () => {
  const admin = await ioredis({});
  await admin.script('FLUSH');
  const client = createClient({ url: URL_, disableOfflineQueue: true });
  await client.connect();
  try {
    const p = new Pipeline(gcra('2/s', 3, { key: key('node-redis') }), { store: client });
    const r = await calls(p, 4);
    assert.equal(r.admitted, 3);
    assert.ok(r.retryAfters[0] > 400 && r.retryAfters[0] <= 500);
    assert.equal(p.store.evals, 1, 'the first request loaded the script (NOSCRIPT, then EVAL once)');
    assert.equal(p.store.sent, 4);
    const name = key('node-redis-wrongtype');
    await admin.hset(`tw:{rl:${name}:}:0`, 'f', 'v');
    const q = new Pipeline(gcra('2/s', 3, { key: name }), { store: client });
    await calls(q, 1);
    assert.equal(q.store.failed, 1, 'WRONGTYPE is an error reply');
    assert.match(String(q.stats().store.errors), /^1$/);
    assert.throws(() => new Pipeline(gcra('2/s', 3, { key: 'x' }), { store: createClient({ url: URL_ }) }), {
      name: 'TypeError',
      message: /disableOfflineQueue: true/,
    });
    p.dispose();
    q.dispose();
  } finally {
    await client.close();
  }
});

test('a store of one\'s own ({run(request)}): its timeout is enforced and a throw is a failure', async () => {
  const seen = [];
  const hang = { run: (request) => (seen.push(request), new Promise(() => {})) };
  const p = new Pipeline(gcra('10/s', 4, { key: 'own', timeout: '20ms', onUnavailable: 'allow' }), { store: hang });
  assert.equal(p.store, hang);
  const r = await calls(p, 1);
  assert.equal(r.admitted, 1, 'onUnavailable allow');
  assert.ok(r.latencies[0] < 20 + 100, `the 20 ms timeout, not a hang (took ${r.latencies[0].toFixed(1)} ms)`);
  assert.equal(p.stats().store.timeouts, 1);
  const [request] = seen;
  assert.deepEqual(request.keys, ['tw:{rl:own:}:0']);
  assert.equal(request.script, 'gcra');
  assert.equal(request.sha1, scripts()[0].sha1);
  assert.equal(request.source, scripts()[0].source);
  assert.equal(request.timeout, 20);
  assert.equal(request.resendSafe, false);
  assert.equal(request.args.length, 7);
  const broken = new Pipeline(gcra('10/s', 4, { key: 'own2' }), {
    store: {
      run() {
        throw new Error('broken adapter');
      },
    },
  });
  assert.equal((await calls(broken, 1)).admitted, 1, 'the local fallback decides');
  assert.equal(broken.stats().store.errors, 1, 'a failure, not unavailability');
  p.dispose();
  broken.dispose();
});

test('bad input: store config errors name their field; a non-client store is a TypeError', { skip }, async () => {
  assert.throws(() => new Pipeline(gcra('1/s', 1, { key: 'k', timeout: 0 })), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /store\.timeout: must be > 0/);
    return true;
  });
  assert.throws(() => new Pipeline({ rateLimit: { rate: '1/s' }, store: { key: 'k' } }), /rateLimit\.algorithm: must be "gcra" when shared/);
  assert.throws(() => new Pipeline(gcra('1/s', 1, { key: 'k', onUnavailable: 'panic' })), /store\.onUnavailable/);
  for (const bad of [42, 'redis://localhost', {}, { get() {} }]) {
    assert.throws(() => new Pipeline(gcra('1/s', 1, { key: 'k' }), { store: bad }), {
      name: 'TypeError',
      message: /options\.store must be an ioredis or node-redis client/,
    });
  }
  const lazy = (options) => {
    const c = new Redis(URL_, { ...options, lazyConnect: true });
    clients.push(c);
    return c;
  };
  assert.throws(() => new Pipeline(gcra('1/s', 1, { key: 'k' }), { store: lazy({}) }), { name: 'TypeError', message: /enableOfflineQueue: false/ });
  assert.throws(() => new RedisStore(lazy({ enableOfflineQueue: false })), { name: 'TypeError', message: /maxRetriesPerRequest: 0 \(got 20\)/ });
  assert.throws(() => new RedisStore({ evalsha() {} }), { name: 'TypeError', message: /expected an ioredis or node-redis \(v4\+\) client, got an? Object/ });
  assert.throws(() => new SharedLimiter(gcra('1/s', 1, { key: 'k', timeout: '2m' })), /store\.timeout: must be at most 1m/);
  assert.throws(() => new SharedLimiter({ ...gcra('1/s', 1, { key: 'k' }), retry: {} }), /only rateLimit, store and keyed/);
  assert.throws(() => new SharedLimiter({ rateLimit: { algorithm: 'gcra', rate: '1/s' } }), /store/);
  const l = new SharedLimiter(gcra('1/s', 1, { key: 'k' }));
  assert.throws(() => l.check('', 0, -1), { name: 'TypeError', message: /cost must be a whole number/ });
  assert.throws(() => l.check(1, 0), { name: 'TypeError', message: /key must be a string/ });
  assert.throws(() => l.reply(99, 'timeout', 0), { name: 'TypeError', message: /unknown or already answered request id/ });
  const id = l.check('', 0);
  assert.equal(typeof id, 'number');
  assert.equal(l.reply(id, [1, 0, 0, 2e9, 0, 0, 1, 0], 1).retryAfter, 2000);
  assert.equal(l.request(id), undefined, 'answered');
  const id2 = l.check('x', 10);
  assert.deepEqual(l.reply(id2, ['not', 'numbers'], 11), { allowed: true, wait: 0, retryAfter: 0, source: 'fallback' });
  assert.match(l.lastError, /unreadable/);
  l.dispose();
  assert.throws(() => l.check('', 0), /disposed/);
  // Descriptors are any string, a NUL included (the fields cross joined by NUL otherwise).
  const keyed = new SharedLimiter({ ...gcra('1/s', 1, { key: 'k' }), keyed: { maxKeys: 10 } });
  const nul = keyed.check('a\0b:{c}', 0);
  assert.deepEqual(keyed.request(nul).keys, ['tw:{rl:k:a\0b:{c}}:0']);
  assert.deepEqual(keyed.request(keyed.check('plain', 0)).keys, ['tw:{rl:k:plain}:0']);
  keyed.dispose();
});

test('tripwire/redis is one module for import and require (the Pipeline wraps clients in the same RedisStore)', () => {
  const required = createRequire(import.meta.url)('tripwire/redis');
  assert.equal(required.RedisStore, RedisStore);
  assert.deepEqual(Object.keys(required), ['RedisStore']);
});
