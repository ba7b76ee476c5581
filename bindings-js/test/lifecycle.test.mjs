// dispose(), Symbol.dispose, FinalizationRegistry: wasm memory is freed, and a disposed object
// says so clearly (never a wasm trap).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pipeline, CircuitBreaker, RateLimiter, KeyedRateLimiter, Bulkhead, HealthChecker, loadPolicies } from 'tripwire';
import { raw } from 'tripwire/raw';

const DISPOSE = Symbol.dispose ?? Symbol.for('Symbol.dispose');

const makers = {
  Pipeline: () => new Pipeline({ circuitBreaker: {} }),
  CircuitBreaker: () => new CircuitBreaker({}),
  RateLimiter: () => new RateLimiter({ rate: '1/s' }),
  KeyedRateLimiter: () => new KeyedRateLimiter({ limit: { rate: '1/s' } }),
  Bulkhead: () => new Bulkhead({}),
  HealthChecker: () => new HealthChecker(),
};

for (const [name, make] of Object.entries(makers)) {
  test(`${name}: dispose() frees its wasm object; later use throws a clear Error`, async () => {
    const before = raw.liveObjects();
    const x = make();
    assert.equal(raw.liveObjects(), before + 1);
    x.dispose();
    assert.equal(raw.liveObjects(), before);
    x.dispose(); // twice is fine
    const disposed = (e) => e instanceof Error && e.code === 'ERR_TRIPWIRE_DISPOSED' && e.message.includes(`this ${name} was disposed`);
    if ('execute' in x) {
      const run = name === 'KeyedRateLimiter' ? x.execute('k', async () => 1) : x.execute(async () => 1);
      await assert.rejects(run, disposed);
    }
    assert.throws(() => x.stats(), disposed);
    if ('check' in x && name !== 'HealthChecker') assert.throws(() => (name === 'KeyedRateLimiter' ? x.check('k') : x.check()), disposed);
    if ('state' in x && name !== 'HealthChecker') assert.throws(() => x.state, disposed);
    const y = make();
    y[DISPOSE]();
    assert.equal(raw.liveObjects(), before);
  });
}

test('a call in flight when its pipeline is disposed rejects once its attempt settles', async () => {
  const p = new Pipeline({ timeout: { perAttempt: '1s' }, retry: {} });
  let release;
  const call = p.execute(() => new Promise((r) => (release = r)));
  await new Promise((r) => setTimeout(r, 5));
  p.dispose();
  release('late');
  await assert.rejects(call, (e) => e.code === 'ERR_TRIPWIRE_DISPOSED');
});

test('a queued call is released when its pipeline is disposed', async () => {
  const p = new Pipeline({ bulkhead: { maxConcurrent: 1, maxQueue: 1 } });
  const first = p.execute(() => new Promise(() => {}));
  const queued = p.execute(async () => 'never');
  await new Promise((r) => setTimeout(r, 5));
  p.dispose();
  await assert.rejects(queued, (e) => e.code === 'ERR_TRIPWIRE_DISPOSED');
  void first;
});

test('disposing a policy set disposes its pipelines', () => {
  const before = raw.liveObjects();
  const policies = loadPolicies({ policies: { a: {}, b: {} } });
  policies.get('a');
  policies.get('b');
  assert.equal(raw.liveObjects(), before + 3);
  policies[DISPOSE]();
  assert.equal(raw.liveObjects(), before);
});

test('objects never disposed are freed by the FinalizationRegistry once collected', () => {
  const script = fileURLToPath(new URL('./fixtures/finalization.mjs', import.meta.url));
  const out = execFileSync(process.execPath, ['--expose-gc', script], { encoding: 'utf8' });
  const { created, alive, afterGc } = JSON.parse(out);
  assert.equal(created, 2000);
  assert.ok(alive >= created, `all alive while referenced (${alive})`);
  assert.ok(afterGc < created / 10, `most freed after GC (${afterGc} of ${created} left)`);
});
