// CircuitBreaker, RateLimiter, KeyedRateLimiter and Bulkhead as standalone policies.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import {
  CircuitBreaker,
  RateLimiter,
  KeyedRateLimiter,
  Bulkhead,
  CircuitOpenError,
  RateLimitedError,
  BulkheadFullError,
  QueueTimeoutError,
} from 'tripwire';
import { FakeClock } from 'tripwire/testing';

const fail = (message = 'down') => async () => {
  throw new Error(message);
};

test('CircuitBreaker: trips, rejects with retryAfter, half-opens, closes', async () => {
  const clock = new FakeClock();
  const breaker = new CircuitBreaker({ trip: { consecutiveFailures: 3 }, openDuration: '2s', halfOpen: { successThreshold: 1 } }, { clock });
  const transitions = [];
  breaker.on('stateChanged', (e) => transitions.push(`${e.from}->${e.to}@${e.at}`));
  assert.equal(breaker.state, 'closed');
  for (let i = 0; i < 3; i++) {
    await clock.advance(10);
    await assert.rejects(breaker.execute(fail()), /down/);
  }
  assert.equal(breaker.state, 'open');
  assert.equal(breaker.openUntil, 2030);
  await clock.advance(1500);
  await assert.rejects(breaker.execute(async () => 'x'), (e) => e instanceof CircuitOpenError && e.retryAfter === 500 && e.code === 'circuitOpen');
  await clock.advance(500);
  assert.equal(await breaker.execute(async () => 'probe'), 'probe');
  assert.equal(breaker.state, 'closed');
  assert.deepEqual(transitions, ['closed->open@30', 'open->halfOpen@2030', 'halfOpen->closed@2030']);
  const s = breaker.stats();
  assert.equal(s.failures, 3);
  assert.equal(s.successes, 1);
  assert.equal(s.rejected, 1);
  breaker.dispose();
});

test('CircuitBreaker: a slow call counts as slow by the clock', async () => {
  const clock = new FakeClock();
  const breaker = new CircuitBreaker(
    { trip: { failureRate: 1, window: { calls: 2 }, minimumCalls: 2, slowCallRate: 1, slowCallDuration: 100 } },
    { clock },
  );
  for (let i = 0; i < 2; i++) {
    const call = breaker.execute(() => clock.sleep(150).then(() => 'slow'));
    await clock.advance(150);
    assert.equal(await call, 'slow');
  }
  assert.equal(breaker.stats().slowCalls, 2);
  assert.equal(breaker.state, 'open');
  breaker.dispose();
});

test('CircuitBreaker: errors the predicate ignores do not count', async () => {
  const breaker = new CircuitBreaker({ trip: { consecutiveFailures: 1 } });
  const notFound = Object.assign(new Error('nope'), { status: 404 });
  await assert.rejects(
    breaker.execute(async () => {
      throw notFound;
    }),
    (e) => e === notFound,
  );
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.stats().ignored, 1);
  const counting = new CircuitBreaker({ trip: { consecutiveFailures: 1 } }, { retryable: () => false });
  await assert.rejects(
    counting.execute(async () => {
      throw notFound;
    }),
  );
  assert.equal(counting.state, 'open');
  breaker.dispose();
  counting.dispose();
});

test('CircuitBreaker: forceOpen, disable, reset', async () => {
  const breaker = new CircuitBreaker({});
  breaker.forceOpen();
  assert.equal(breaker.state, 'forcedOpen');
  await assert.rejects(breaker.execute(async () => 1), (e) => e instanceof CircuitOpenError && e.retryAfter === undefined);
  breaker.disable();
  assert.equal(breaker.state, 'disabled');
  for (let i = 0; i < 10; i++) await assert.rejects(breaker.execute(fail()));
  assert.equal(breaker.state, 'disabled');
  breaker.reset();
  assert.equal(breaker.state, 'closed');
  assert.equal(await breaker.execute(async () => 'ok'), 'ok');
  breaker.dispose();
});

test('CircuitBreaker: toJSON / restore across instances (and processes: it is plain JSON)', async () => {
  const clock = new FakeClock();
  const config = { trip: { failureRate: 0.5, window: { calls: 4 }, minimumCalls: 4 }, openDuration: 1000 };
  const a = new CircuitBreaker(config, { clock });
  await a.execute(async () => 1);
  await assert.rejects(a.execute(fail()));
  const snapshot = JSON.parse(JSON.stringify(a));
  assert.equal(snapshot.state, 'closed');
  assert.deepEqual(snapshot.window, { calls: { size: 4, outcomes: 'sf' } });
  const b = new CircuitBreaker(config, { clock });
  b.restore(snapshot);
  await b.execute(async () => 1);
  await assert.rejects(b.execute(fail()));
  assert.equal(b.state, 'open', 'the restored window held two outcomes already');
  await clock.advance(400);
  const open = JSON.stringify(b);
  const c = new CircuitBreaker(config, { clock });
  c.restore(open);
  await assert.rejects(c.execute(async () => 1), (e) => e.retryAfter === 600);
  assert.throws(() => new CircuitBreaker({ trip: { consecutiveFailures: 2 } }).restore(snapshot), (e) => e.code === 'invalidConfig');
  for (const x of [a, b, c]) x.dispose();
});

test('CircuitBreaker: the signal option reaches the function; an aborted one rejects first', async () => {
  const breaker = new CircuitBreaker({});
  const controller = new AbortController();
  let seen;
  await breaker.execute(({ signal, attempt }) => (seen = [signal, attempt]), { signal: controller.signal });
  assert.deepEqual(seen, [controller.signal, 1]);
  let ran = false;
  await assert.rejects(breaker.execute(() => (ran = true), { signal: AbortSignal.abort(new Error('gone')) }), /gone/);
  assert.equal(ran, false);
  breaker.dispose();
});

// The system clock is `performance.now()`, looked up at each read: count the reads.
async function countingClockReads(run) {
  const perf = globalThis.performance;
  const original = perf.now;
  let reads = 0;
  // mock.method, not an assignment: Node 18's performance.now is read-only.
  const counting = mock.method(perf, 'now', function now() {
    reads++;
    return original.call(perf);
  });
  try {
    await run(() => {
      const n = reads;
      reads = 0;
      return n;
    });
  } finally {
    counting.mock.restore();
  }
}

test('CircuitBreaker: closed under a consecutive rule, a success reads no clock; failures and half-open trials read it', async () => {
  await countingClockReads(async (reads) => {
    const breaker = new CircuitBreaker({ trip: { consecutiveFailures: 1 }, openDuration: 1, halfOpen: { successThreshold: 1 } });
    const transitions = [];
    breaker.on('stateChanged', (e) => transitions.push(`${e.from}->${e.to}`));
    reads();
    assert.equal(await breaker.execute(async () => 7), 7);
    assert.equal(reads(), 0, 'closed, consecutive rule: neither instant can matter');
    await assert.rejects(breaker.execute(fail()), /down/);
    assert.equal(reads(), 1, 'a failure opens the breaker at its (end) instant');
    await new Promise((resolve) => setTimeout(resolve, 5));
    reads();
    assert.equal(await breaker.execute(async () => 8), 8);
    assert.equal(reads(), 2, 'a half-open trial: admitted and closing at their instants');
    breaker.forceOpen();
    reads();
    await assert.rejects(breaker.execute(async () => 1), CircuitOpenError);
    assert.equal(reads(), 1, 'forced open: the rejection is at its instant');
    breaker.reset();
    assert.deepEqual(transitions, ['closed->open', 'open->halfOpen', 'halfOpen->closed', 'closed->forcedOpen', 'forcedOpen->closed']);
    assert.equal(breaker.stats().successes, 2);
    const rate = new CircuitBreaker({ trip: { failureRate: 0.5, window: { calls: 4 } } });
    reads();
    await rate.execute(async () => 1);
    assert.equal(reads(), 2, 'a window rule needs the instant');
    // A clock of the caller's may go back: it is always read.
    const clock = new FakeClock();
    let fakeReads = 0;
    const counted = { now: () => (fakeReads++, clock.now()), sleep: (ms, signal) => clock.sleep(ms, signal) };
    const faked = new CircuitBreaker({}, { clock: counted });
    await faked.execute(async () => 1);
    assert.equal(fakeReads, 2);
    breaker.dispose();
    rate.dispose();
    faked.dispose();
  });
});

test('RateLimiter.check: allowed, denied with retryAfter (ms), reserved waits, costs', () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ rate: '10/s', burst: 2 }, { clock });
  assert.deepEqual(limiter.check(), { allowed: true, retryAfter: 0, wait: 0 });
  assert.deepEqual(limiter.check(), { allowed: true, retryAfter: 0, wait: 0 });
  assert.deepEqual(limiter.check(), { allowed: false, retryAfter: 100, wait: 0 });
  clock.set(100);
  assert.equal(limiter.check().allowed, true);
  assert.deepEqual(limiter.check(3), { allowed: false, retryAfter: Infinity, wait: 0 }, 'more than the burst never passes');
  const waiting = new RateLimiter({ rate: '10/s', burst: 1, maxWait: 500 }, { clock });
  assert.equal(waiting.check().wait, 0);
  assert.deepEqual(waiting.check(), { allowed: true, retryAfter: 0, wait: 100 });
  assert.equal(limiter.stats().denied, 2);
  limiter.dispose();
  waiting.dispose();
});

test('RateLimiter: several limits must all pass', () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter([{ rate: '5/s' }, { rate: '6/m', burst: 6 }], { clock });
  let allowed = 0;
  for (let t = 0; t < 10_000; t += 100) {
    clock.set(t);
    if (limiter.check().allowed) allowed++;
  }
  assert.equal(allowed, 6);
  limiter.dispose();
});

test('RateLimiter.execute waits out a reserved wait, or rejects with RateLimitedError', async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ rate: '1/s', burst: 1, maxWait: 2000 }, { clock });
  assert.equal(await limiter.execute(async () => 'first'), 'first');
  let ranAt;
  const second = limiter.execute(async () => (ranAt = clock.now()));
  await clock.advance(1000);
  await second;
  assert.equal(ranAt, 1000);
  const strict = new RateLimiter({ rate: '1/s', burst: 1 }, { clock });
  await strict.execute(async () => 1);
  await assert.rejects(strict.execute(async () => 2), (e) => e instanceof RateLimitedError && e.retryAfter === 1000);
  limiter.dispose();
  strict.dispose();
});

test('KeyedRateLimiter: one limiter per key, memory bounded', () => {
  const clock = new FakeClock();
  const limiter = new KeyedRateLimiter({ limit: { rate: '1/s', burst: 1 }, maxKeys: 100 }, { clock });
  assert.equal(limiter.check('alice').allowed, true);
  assert.equal(limiter.check('alice').allowed, false);
  assert.equal(limiter.check('bob').allowed, true);
  assert.equal(limiter.size, 2);
  for (let i = 0; i < 500; i++) limiter.check(`user${i}`);
  assert.ok(limiter.size <= 100);
  assert.throws(() => limiter.check(42), TypeError);
  limiter.dispose();
});

test('Bulkhead: runs up to maxConcurrent, queues FIFO, refuses when full, times out waiters', async () => {
  const clock = new FakeClock();
  const bulkhead = new Bulkhead({ maxConcurrent: 2, maxQueue: 1, maxWait: 100 }, { clock });
  const events = [];
  bulkhead.on('queued', () => events.push('queued')).on('woken', () => events.push('woken')).on('rejected', (e) => events.push(e.reason));
  let release;
  const gate = new Promise((r) => (release = r));
  const running = [bulkhead.execute(() => gate), bulkhead.execute(() => gate)];
  const queued = bulkhead.execute(async () => 'queued one');
  await clock.advance(0);
  assert.deepEqual(bulkhead.stats().inFlight, 2);
  await assert.rejects(bulkhead.execute(async () => 'x'), (e) => e instanceof BulkheadFullError && e.code === 'bulkheadFull');
  release('done');
  assert.deepEqual(await Promise.all(running), ['done', 'done']);
  assert.equal(await queued, 'queued one');
  let hold;
  const held = [bulkhead.execute(() => new Promise((r) => (hold = r))), bulkhead.execute(() => new Promise(() => {}))];
  const late = bulkhead.execute(async () => 'late');
  const check = assert.rejects(late, (e) => e instanceof QueueTimeoutError);
  await clock.advance(100);
  await check;
  hold(1);
  await held[0];
  assert.deepEqual(events, ['queued', 'bulkheadFull', 'woken', 'queued', 'queueTimeout']);
  const s = bulkhead.stats();
  assert.equal(s.rejectedFull, 1);
  assert.equal(s.queueTimeouts, 1);
  bulkhead.dispose();
});
