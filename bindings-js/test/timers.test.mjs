// The system clock reads performance.now() and setTimeout when it is used, not when tripwire
// was loaded: fake timers installed later (node:test's mock timers here; sinon and jest work the
// same way) drive pipelines built before them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, TimeoutError, RetriesExhaustedError, systemClock } from 'tripwire';
import { FakeClock } from 'tripwire/testing';

async function settle() {
  for (let i = 0; i < 50; i++) await undefined;
}

// Node 20 takes `{apis}`, Node 18 (its experimental mock timers) an array of names.
function enableMockTimeouts(t) {
  try {
    t.mock.timers.enable({ apis: ['setTimeout'] });
  } catch {
    t.mock.timers.enable(['setTimeout']);
  }
}

test('node:test mock timers drive backoff sleeps and attempt timeouts of the system clock', async (t) => {
  const p = new Pipeline({
    retry: { maxRetries: 1, backoff: { type: 'constant', base: 1000, jitter: 'none' } },
    timeout: { perAttempt: 5000 },
  });
  let now = 1_000_000;
  t.mock.method(performance, 'now', () => now);
  enableMockTimeouts(t);
  const advance = async (ms) => {
    now += ms;
    t.mock.timers.tick(ms);
    await settle();
  };

  const attempts = [];
  const call = p.execute(async ({ attempt, signal }) => {
    attempts.push([attempt, now]);
    if (attempt === 1) throw Object.assign(new Error('busy'), { status: 503 });
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
  });
  await settle();
  assert.deepEqual(attempts, [[1, 1_000_000]]);
  await advance(999);
  assert.equal(attempts.length, 1);
  await advance(1);
  assert.deepEqual(attempts, [
    [1, 1_000_000],
    [2, 1_001_000],
  ]);
  await advance(5000);
  // Attempt 2 timed out with no retries left: retriesExhausted, caused by the timeout.
  await assert.rejects(call, (e) => e instanceof RetriesExhaustedError && e.attempts === 2 && e.cause instanceof TimeoutError);
  p.dispose();
});

test('systemClock.sleep honours an abort signal', async () => {
  const controller = new AbortController();
  const sleeping = systemClock.sleep(10_000, controller.signal);
  controller.abort(new Error('woken'));
  await assert.rejects(sleeping, /woken/);
  await assert.rejects(systemClock.sleep(1, AbortSignal.abort(new Error('already'))), /already/);
  const t0 = performance.now();
  await systemClock.sleep(5);
  assert.ok(performance.now() - t0 >= 4);
});

test('FakeClock: sleeps resolve in time order as time advances; aborts reject', async () => {
  const clock = new FakeClock(100);
  const order = [];
  clock.sleep(30).then(() => order.push(['b', clock.now()]));
  clock.sleep(10).then(() => order.push(['a', clock.now()]));
  const controller = new AbortController();
  const aborted = clock.sleep(20, controller.signal);
  assert.equal(clock.pending, 3);
  controller.abort(new Error('no'));
  await assert.rejects(aborted, /no/);
  await clock.advance(25);
  assert.deepEqual(order, [['a', 110]]);
  assert.equal(clock.now(), 125);
  await clock.advance(5);
  assert.deepEqual(order, [
    ['a', 110],
    ['b', 130],
  ]);
  assert.equal(clock.pending, 0);
  clock.set(50);
  assert.equal(clock.now(), 50);
  assert.throws(() => new FakeClock(NaN), TypeError);
  await assert.rejects(clock.advance(-1), TypeError);
});

test('sleeps longer than setTimeout allows are clamped, not fired at once', async (t) => {
  enableMockTimeouts(t);
  let done = false;
  systemClock.sleep(2 ** 40).then(() => (done = true));
  t.mock.timers.tick(1000);
  await settle();
  assert.equal(done, false);
  t.mock.timers.tick(2 ** 31);
  await settle();
  assert.equal(done, true, 'woken at the clamp; a caller that re-checks the time sleeps again');
});

test('a pipeline with a 100-year attempt timeout does not spin its timer', async (t) => {
  const p = new Pipeline({ timeout: { perAttempt: '36500d' } });
  let fired = 0;
  const real = globalThis.setTimeout;
  t.mock.method(globalThis, 'setTimeout', (fn, ms, ...rest) => {
    fired++;
    assert.ok(ms <= 2_147_483_647, `setTimeout(${ms})`);
    return real(fn, ms, ...rest);
  });
  assert.equal(await p.execute(async () => 'ok'), 'ok');
  assert.equal(fired, 1);
  p.dispose();
});
