// Pipeline.execute as users write it: await, instanceof, codes, events, fake clock, abort.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import {
  Pipeline,
  TripwireError,
  CircuitOpenError,
  RetriesExhaustedError,
  TimeoutError,
  DeadlineExceededError,
  BudgetExhaustedError,
  RateLimitedError,
  BulkheadFullError,
  QueueTimeoutError,
} from 'tripwire';
import { FakeClock } from 'tripwire/testing';

function httpError(status, extra = {}) {
  return Object.assign(new Error(`HTTP ${status}`), { status }, extra);
}

/** A promise with its resolve/reject exposed. */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A function that hangs until its attempt's signal aborts, then rejects with the reason. */
const hangUntilAborted = ({ signal }) =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));

test('a call with no policies returns the function value and sees attempt 1', async () => {
  const p = new Pipeline({});
  let seen;
  let keys;
  const v = await p.execute(async (ctx) => {
    seen = ctx.attempt;
    keys = Object.keys(ctx);
    return { ok: 42 };
  });
  assert.deepEqual(v, { ok: 42 });
  assert.equal(seen, 1);
  assert.deepEqual(keys, ['attempt'], 'fn sees attempt and the signal getter, nothing internal');
  assert.equal(p.stats().succeeded, 1);
  p.dispose();
});

test('synchronous functions and thrown values work too', async () => {
  const p = new Pipeline({ retry: { maxRetries: 1, backoff: { base: 0 } } });
  assert.equal(await p.execute(() => 7), 7);
  await assert.rejects(
    p.execute(() => {
      throw new RangeError('sync');
    }),
    RangeError,
  );
  p.dispose();
});

test('retries retryable failures with the configured backoff, on the fake clock', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ retry: { maxRetries: 3, backoff: { type: 'constant', base: 100, jitter: 'none' } } }, { clock });
  const scheduled = [];
  p.on('retryScheduled', (e) => scheduled.push([e.attempt, e.delay, e.at]));
  const attempts = [];
  const call = p.execute(async ({ attempt }) => {
    attempts.push([attempt, clock.now()]);
    if (attempt < 3) throw httpError(503);
    return 'third time';
  });
  await clock.advance(99);
  assert.deepEqual(attempts, [[1, 0]], 'the retry waits out its backoff');
  await clock.advance(1);
  await clock.advance(100);
  assert.equal(await call, 'third time');
  assert.deepEqual(attempts, [
    [1, 0],
    [2, 100],
    [3, 200],
  ]);
  assert.deepEqual(scheduled, [
    [2, 100, 0],
    [3, 100, 100],
  ]);
  p.dispose();
});

test('retries exhausted: RetriesExhaustedError with attempts and the last error as cause', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ retry: { maxRetries: 2, backoff: { type: 'constant', base: 10, jitter: 'none' } } }, { clock });
  const gaveUp = [];
  p.on('gaveUp', (e) => gaveUp.push(e));
  const errors = [];
  const call = p.execute(async () => {
    const e = httpError(500);
    errors.push(e);
    throw e;
  });
  const settled = assert.rejects(call, (e) => {
    assert.ok(e instanceof RetriesExhaustedError);
    assert.ok(e instanceof TripwireError);
    assert.ok(e instanceof Error);
    assert.equal(e.code, 'retriesExhausted');
    assert.equal(e.name, 'RetriesExhaustedError');
    assert.equal(e.attempts, 3);
    assert.equal(e.cause, errors[2]);
    assert.match(e.message, /3 attempts: HTTP 500/);
    return true;
  });
  await clock.advance(100);
  await settled;
  assert.equal(errors.length, 3);
  assert.deepEqual(
    gaveUp.map((e) => [e.reason, e.attempts]),
    [['retriesExhausted', 3]],
  );
  p.dispose();
});

test('an error the predicate does not retry propagates unchanged after one attempt', async () => {
  const p = new Pipeline({ retry: { maxRetries: 3 } });
  const boom = new Error('not retryable by default');
  let n = 0;
  await assert.rejects(
    p.execute(async () => {
      n++;
      throw boom;
    }),
    (e) => e === boom,
  );
  assert.equal(n, 1);
  p.dispose();
});

test('the default predicate: 5xx, 429, network codes and fetch TypeErrors retry; 4xx is ignored', async () => {
  const { defaultRetryable } = await import('tripwire');
  assert.equal(defaultRetryable(httpError(503)), true);
  assert.equal(defaultRetryable(httpError(429)), true);
  assert.equal(defaultRetryable({ statusCode: 502 }), true);
  assert.equal(defaultRetryable({ response: { status: 500 } }), true);
  assert.equal(defaultRetryable(Object.assign(new Error('x'), { code: 'ECONNRESET' })), true);
  assert.equal(defaultRetryable(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } })), true);
  assert.equal(defaultRetryable(new TypeError('Failed to fetch')), true);
  assert.equal(defaultRetryable(httpError(404)), 'ignore');
  assert.equal(defaultRetryable(httpError(400)), 'ignore');
  assert.equal(defaultRetryable(new Error('plain')), false);
  assert.equal(defaultRetryable(new TypeError('x is not a function')), false);
  assert.equal(defaultRetryable('a string'), false);
  assert.equal(defaultRetryable(undefined), false);
});

test('a custom predicate decides: true retries, false fails, "ignore" is not counted by the breaker', async () => {
  const clock = new FakeClock();
  const p = new Pipeline(
    { circuitBreaker: { trip: { consecutiveFailures: 1 } }, retry: { maxRetries: 2, backoff: { base: 0 } } },
    { clock, retryable: (e) => (e.message === 'again' ? true : e.message === 'mine' ? 'ignore' : false) },
  );
  let n = 0;
  assert.equal(
    await p.execute(async () => {
      if (++n < 3) throw new Error('again');
      return 'ok';
    }),
    'ok',
  );
  assert.equal(n, 3);
  const mine = new Error('mine');
  await assert.rejects(
    p.execute(async () => {
      throw mine;
    }),
    (e) => e === mine,
  );
  assert.equal(p.state, 'closed', 'an ignored error does not trip the breaker');
  assert.equal(p.stats().breaker.ignored, 1);
  await assert.rejects(
    p.execute(async () => {
      throw new Error('fatal');
    }),
    /fatal/,
  );
  assert.equal(p.state, 'open');
  p.dispose();
});

test('a 4xx under the default predicate is neither retried nor counted by the breaker', async () => {
  const p = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 1 } }, retry: { maxRetries: 3, backoff: { base: 0 } } });
  let n = 0;
  for (let i = 0; i < 3; i++) {
    await assert.rejects(
      p.execute(async () => {
        n++;
        throw httpError(404);
      }),
      /HTTP 404/,
    );
  }
  assert.equal(n, 3);
  assert.equal(p.state, 'closed');
  p.dispose();
});

test('a per-attempt timeout aborts that attempt signal; the call settles after the attempt', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ timeout: { perAttempt: 100 } }, { clock });
  let reason;
  const call = p.execute(({ signal }) => {
    signal.addEventListener('abort', () => (reason = signal.reason));
    return hangUntilAborted({ signal });
  });
  let settled = false;
  call.catch(() => {}).finally(() => (settled = true));
  await clock.advance(99);
  assert.equal(reason, undefined);
  assert.equal(settled, false);
  await clock.advance(1);
  await assert.rejects(call, (e) => e instanceof TimeoutError && e.code === 'timeout' && e.attempts === 1);
  assert.ok(reason instanceof TimeoutError, 'the attempt signal aborted with a TimeoutError');
  p.dispose();
});

test('a timed-out attempt that ignores its signal still counts as a timeout, once it settles', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ timeout: { perAttempt: 50 } }, { clock });
  const slow = deferred();
  const call = p.execute(() => slow.promise);
  let settled = false;
  call.catch(() => {}).finally(() => (settled = true));
  await clock.advance(500);
  assert.equal(settled, false, 'the call waits for the attempt it cancelled');
  slow.resolve('too late');
  await assert.rejects(call, TimeoutError);
  p.dispose();
});

test('timeouts are retried: each attempt gets its own signal and deadline', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ retry: { maxRetries: 1, backoff: { base: 0 } }, timeout: { perAttempt: 100 } }, { clock });
  const signals = [];
  const call = p.execute(({ signal, attempt }) => {
    signals.push(signal);
    if (attempt === 1) return hangUntilAborted({ signal });
    return 'second';
  });
  await clock.advance(100);
  assert.equal(await call, 'second');
  assert.equal(signals.length, 2);
  assert.equal(signals[0].aborted, true);
  assert.equal(signals[1].aborted, false);
  assert.notEqual(signals[0], signals[1]);
  p.dispose();
});

test('a deadline passed in bounds the call: DeadlineExceededError', async () => {
  const clock = new FakeClock(1000);
  const p = new Pipeline({ timeout: { perAttempt: 100 } }, { clock });
  const call = p.execute(hangUntilAborted, { deadline: clock.now() + 30 });
  await clock.advance(30);
  await assert.rejects(call, (e) => e instanceof DeadlineExceededError && e.code === 'deadlineExceeded');
  // A Date is wall-clock time.
  const late = p.execute(hangUntilAborted, { deadline: new Date(Date.now() - 1) });
  await assert.rejects(late, DeadlineExceededError);
  p.dispose();
});

test('the overall timeout gives up when the next retry could not start in time', async () => {
  const clock = new FakeClock();
  const p = new Pipeline(
    { retry: { maxRetries: 5, backoff: { type: 'constant', base: 100, jitter: 'none' } }, timeout: { perAttempt: 1000, overall: 150 } },
    { clock },
  );
  const cause = httpError(503);
  const call = p.execute(async () => {
    throw cause;
  });
  const check = assert.rejects(call, (e) => e instanceof DeadlineExceededError && e.cause === cause && e.attempts === 2);
  await clock.advance(200);
  await check;
  p.dispose();
});

test('the retry budget ends a retry storm with BudgetExhaustedError', async () => {
  const p = new Pipeline({ retry: { maxRetries: 10, backoff: { base: 0 }, budget: { maxTokens: 4, tokenRatio: 0.1 } } });
  await assert.rejects(
    p.execute(async () => {
      throw httpError(503);
    }),
    (e) => e instanceof BudgetExhaustedError && e.code === 'budgetExhausted' && e.cause.status === 503,
  );
  assert.ok(p.stats().budgetTokens <= 2);
  p.dispose();
});

test('the breaker opens; rejections carry retryAfter; events tell the story', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 2 }, openDuration: '1s' } }, { clock });
  const events = [];
  p.on('*', (e) => events.push(e.type === 'stateChanged' ? `${e.from}->${e.to}` : e.type));
  for (let i = 0; i < 2; i++) await assert.rejects(p.execute(async () => Promise.reject(new Error('down'))), /down/);
  assert.equal(p.state, 'open');
  await clock.advance(400);
  let ran = false;
  await assert.rejects(
    p.execute(async () => (ran = true)),
    (e) => e instanceof CircuitOpenError && e.code === 'circuitOpen' && e.retryAfter === 600 && e.attempts === 0,
  );
  assert.equal(ran, false);
  await clock.advance(600);
  assert.equal(await p.execute(async () => 'probe'), 'probe');
  assert.deepEqual(events, ['closed->open', 'rejected', 'open->halfOpen']);
  p.dispose();
});

test('fallback chains: tried in order, each given the error; only for the kinds fallback.on lists', async () => {
  const p = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 1 } } });
  const down = new Error('down');
  // The function's own error is a "failure": the default fallback.on covers it.
  assert.equal(await p.execute(async () => Promise.reject(down), { fallback: 'cached' }), 'cached');
  const seen = [];
  const value = await p.execute(async () => 'never runs', {
    fallback: [
      (e) => {
        seen.push(e);
        throw new Error('cache miss');
      },
      async (e) => {
        seen.push(e);
        return 'from database';
      },
      'default price',
    ],
  });
  assert.equal(value, 'from database');
  assert.equal(seen.length, 2);
  assert.ok(seen[0] instanceof CircuitOpenError);
  assert.equal(seen[1], seen[0]);
  // A function returning undefined (a cache miss) falls through; the last one is final.
  assert.equal(await p.execute(async () => 1, { fallback: [() => undefined, async () => undefined, 'last'] }), 'last');
  assert.equal(await p.execute(async () => 1, { fallback: [() => 'hit', 'last'] }), 'hit');
  assert.equal(await p.execute(async () => 1, { fallback: () => undefined }), undefined);
  // Every fallback failing: the last one's error.
  await assert.rejects(
    p.execute(async () => 1, {
      fallback: [
        () => {
          throw new Error('one');
        },
        () => {
          throw new Error('two');
        },
      ],
    }),
    /two/,
  );
  p.dispose();

  const onlyOpen = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 5 } }, fallback: { on: ['circuitOpen'] } });
  await assert.rejects(onlyOpen.execute(async () => Promise.reject(down), { fallback: 'unused' }), (e) => e === down);
  onlyOpen.dispose();
});

test('the caller signal cancels a queued call and frees its queue place', async () => {
  const p = new Pipeline({ bulkhead: { maxConcurrent: 1, maxQueue: 1 } });
  const gate = deferred();
  const first = p.execute(() => gate.promise);
  const controller = new AbortController();
  const queued = p.execute(async () => 'never', { signal: controller.signal });
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(p.stats().bulkhead.queueDepth, 1);
  await assert.rejects(p.execute(async () => 'full'), BulkheadFullError);
  controller.abort(new Error('user gave up'));
  await assert.rejects(queued, /user gave up/);
  assert.equal(p.stats().bulkhead.queueDepth, 0);
  assert.equal(p.stats().cancelled, 1);
  // The place is free again.
  const third = p.execute(async () => 'third');
  gate.resolve('first');
  assert.equal(await first, 'first');
  assert.equal(await third, 'third');
  p.dispose();
});

test('the caller signal aborts the running attempt; the slot is freed after it settles', async () => {
  const p = new Pipeline({ bulkhead: { maxConcurrent: 1, maxQueue: 0 }, timeout: { perAttempt: '10s' } });
  const controller = new AbortController();
  let attemptSignal;
  const call = p.execute(
    ({ signal }) => {
      attemptSignal = signal;
      return hangUntilAborted({ signal });
    },
    { signal: controller.signal },
  );
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(p.stats().bulkhead.inFlight, 1);
  const reason = new Error('stop');
  controller.abort(reason);
  await assert.rejects(call, (e) => e === reason);
  assert.equal(attemptSignal.aborted, true);
  assert.equal(attemptSignal.reason, reason);
  assert.equal(p.stats().bulkhead.inFlight, 0);
  assert.equal(await p.execute(async () => 'next'), 'next');
  p.dispose();
});

test('an already-aborted signal rejects at once, without running the function', async () => {
  const p = new Pipeline({});
  let ran = false;
  await assert.rejects(
    p.execute(async () => (ran = true), { signal: AbortSignal.abort(new Error('early')) }),
    /early/,
  );
  assert.equal(ran, false);
  assert.equal(p.stats().calls, 0);
  p.dispose();
});

test('without a deadline, the attempt signal is the caller signal (no controller is made)', async () => {
  const p = new Pipeline({});
  const controller = new AbortController();
  let seen;
  await p.execute(({ signal }) => (seen = signal), { signal: controller.signal });
  assert.equal(seen, controller.signal);
  let quiet;
  await p.execute(({ signal }) => (quiet = signal));
  assert.equal(quiet.aborted, false);
  p.dispose();
});

test('Retry-After: a retryAfter property (ms) and a Response header (seconds) stretch the backoff', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ retry: { maxRetries: 2, backoff: { type: 'constant', base: 10, jitter: 'none' } } }, { clock });
  const delays = [];
  p.on('retryScheduled', (e) => delays.push(e.delay));
  let n = 0;
  const call = p.execute(async () => {
    n++;
    if (n === 1) throw httpError(503, { retryAfter: 250 });
    if (n === 2) throw new Response('busy', { status: 503, headers: { 'Retry-After': '2' } });
    return 'ok';
  });
  await clock.advance(250);
  await clock.advance(2000);
  assert.equal(await call, 'ok');
  assert.deepEqual(delays, [250, 2000]);
  p.dispose();
});

test('a returned failing Response counts as a failure, and stays the result when not retried', async () => {
  const p = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 1 } } });
  const response = new Response('oops', { status: 503 });
  assert.equal(await p.execute(async () => response), response);
  assert.equal(p.state, 'open');
  p.dispose();

  const clock = new FakeClock();
  const r = new Pipeline({ retry: { maxRetries: 1, backoff: { type: 'constant', base: 5, jitter: 'none' } } }, { clock });
  const delays = [];
  r.on('retryScheduled', (e) => delays.push(e.delay));
  const responses = [];
  const call = r.execute(async () => {
    const res = new Response(null, { status: 429, headers: { 'retry-after': '1' } });
    responses.push(res);
    return res;
  });
  const check = assert.rejects(call, (e) => e instanceof RetriesExhaustedError && e.cause === responses[1]);
  await clock.advance(1000);
  await check;
  assert.deepEqual(delays, [1000]);
  r.dispose();
});

test('parseRetryAfter reads delay-seconds and HTTP dates', async () => {
  const { parseRetryAfter } = await import('tripwire');
  assert.equal(parseRetryAfter('120'), 120_000);
  assert.equal(parseRetryAfter(' 0 '), 0);
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:03 GMT', now), 3000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0);
  assert.ok(Number.isNaN(parseRetryAfter('soon', now)));
});

test('pushback: a Retry-After hint holds back new calls as rateLimited', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ retry: { maxRetries: 0, pushback: 'pipeline' } }, { clock });
  await assert.rejects(p.execute(async () => Promise.reject(httpError(503, { retryAfter: 500 }))), /HTTP 503/);
  await assert.rejects(p.execute(async () => 'x'), (e) => e instanceof RateLimitedError && e.retryAfter === 500);
  await clock.advance(500);
  assert.equal(await p.execute(async () => 'x'), 'x');
  p.dispose();
});

test('a bulkhead queue wait ends with QueueTimeoutError at maxWait', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ bulkhead: { maxConcurrent: 1, maxQueue: 5, maxWait: 100 } }, { clock });
  const gate = deferred();
  const first = p.execute(() => gate.promise);
  const waiting = p.execute(async () => 'late');
  const check = assert.rejects(waiting, (e) => e instanceof QueueTimeoutError && e.code === 'queueTimeout');
  await clock.advance(100);
  await check;
  gate.resolve(1);
  assert.equal(await first, 1);
  p.dispose();
});

test('a released slot wakes the oldest queued call', async () => {
  const p = new Pipeline({ bulkhead: { maxConcurrent: 1, maxQueue: 10 } });
  const woken = [];
  p.on('woken', (e) => woken.push(e.ticket));
  const order = [];
  const gates = [deferred(), deferred(), deferred()];
  const calls = gates.map((g, i) =>
    p.execute(async () => {
      order.push(i);
      return g.promise;
    }),
  );
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, [0]);
  gates[0].resolve('a');
  await calls[0];
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, [0, 1]);
  gates[1].resolve('b');
  gates[2].resolve('c');
  assert.deepEqual(await Promise.all(calls), ['a', 'b', 'c']);
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(woken.length, 2);
  p.dispose();
});

test('stats() and prometheus() come from the core', async () => {
  const p = new Pipeline({ circuitBreaker: {}, retry: { maxRetries: 0 } }, { name: 'payments' });
  await p.execute(async () => 1);
  await p.execute(async () => 2);
  await assert.rejects(p.execute(async () => Promise.reject(new Error('x'))));
  const s = p.stats();
  assert.equal(s.calls, 3);
  assert.equal(s.succeeded, 2);
  assert.equal(s.failed.failure, 1);
  assert.equal(s.attempts, 3);
  assert.equal(s.inFlight, 0);
  assert.equal(s.state, 'closed');
  assert.equal(s.breaker.successes, 2);
  const text = p.prometheus();
  assert.match(text, /^tripwire_calls_total\{pipeline="payments"\} 3$/m);
  assert.match(text, /^tripwire_calls_succeeded_total\{pipeline="payments"\} 2$/m);
  assert.match(text, /# TYPE tripwire_calls_total counter/);
  assert.equal(p.name, 'payments');
  p.dispose();
});

test('toJSON / restore carry an open breaker to another pipeline', async () => {
  const clock = new FakeClock();
  const config = { circuitBreaker: { trip: { consecutiveFailures: 1 }, openDuration: 1000 } };
  const a = new Pipeline(config, { clock });
  await assert.rejects(a.execute(async () => Promise.reject(new Error('x'))));
  await clock.advance(300);
  const saved = JSON.stringify(a);
  a.dispose();
  const b = new Pipeline(config, { clock });
  b.restore(saved);
  assert.equal(b.state, 'open');
  await assert.rejects(b.execute(async () => 1), (e) => e instanceof CircuitOpenError && e.retryAfter === 700);
  b.dispose();
});

test('manual breaker control: forceOpen, disable, reset', async () => {
  const p = new Pipeline({ circuitBreaker: {} });
  p.forceOpen();
  assert.equal(p.state, 'forcedOpen');
  await assert.rejects(p.execute(async () => 1), (e) => e instanceof CircuitOpenError && e.retryAfter === undefined);
  p.disable();
  assert.equal(p.state, 'disabled');
  assert.equal(await p.execute(async () => 1), 1);
  p.reset();
  assert.equal(p.state, 'closed');
  p.dispose();
  const none = new Pipeline({});
  assert.equal(none.state, null);
  assert.throws(() => none.forceOpen(), /no circuit breaker/);
  none.dispose();
});

test('reconfigure keeps state that fits; a bad config is refused and the old one stays', async () => {
  const p = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 1 } } });
  await assert.rejects(p.execute(async () => Promise.reject(new Error('x'))));
  assert.equal(p.state, 'open');
  p.reconfigure({ circuitBreaker: { trip: { consecutiveFailures: 3 } }, retry: {} });
  assert.equal(p.state, 'open');
  assert.throws(() => p.reconfigure({ retry: { maxRetrys: 1 } }), (e) => e.code === 'invalidConfig' && e.path === 'retry.maxRetrys');
  assert.equal(p.state, 'open');
  p.dispose();
});

test('rate limits refuse with RateLimitedError and retryAfter', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ rateLimit: { rate: '2/s', burst: 2 } }, { clock });
  await p.execute(async () => 1);
  await p.execute(async () => 2);
  await assert.rejects(p.execute(async () => 3), (e) => e instanceof RateLimitedError && e.code === 'rateLimited' && e.retryAfter === 500);
  await clock.advance(500);
  assert.equal(await p.execute(async () => 4), 4);
  p.dispose();
});

test('a rate-limit wait (maxWait) sleeps on the clock, then runs', async () => {
  const clock = new FakeClock();
  const p = new Pipeline({ rateLimit: { rate: '10/s', burst: 1, maxWait: '1s' } }, { clock });
  await p.execute(async () => 1);
  let ranAt;
  const call = p.execute(async () => (ranAt = clock.now()));
  await clock.advance(100);
  await call;
  assert.equal(ranAt, 100);
  p.dispose();
});

test('a listener that throws does not break the call', async () => {
  const p = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 1 } } });
  // The listener's error is reported as an uncaught exception (as EventTarget does); catch it
  // here instead of letting the test runner see it.
  const runners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  const reported = new Promise((resolve) => process.once('uncaughtException', resolve));
  try {
    p.on('stateChanged', () => {
      throw new Error('listener bug');
    });
    await assert.rejects(p.execute(async () => Promise.reject(new Error('x'))), /^Error: x$/);
    assert.equal((await reported).message, 'listener bug');
  } finally {
    for (const l of runners) process.on('uncaughtException', l);
  }
  assert.equal(p.state, 'open');
  p.dispose();
});

test('on() refuses unknown event names; off() removes a listener', () => {
  const p = new Pipeline({ circuitBreaker: {} });
  assert.throws(() => p.on('statechanged', () => {}), /unknown event "statechanged"/);
  assert.throws(() => p.on('stateChanged', 'nope'), TypeError);
  const seen = [];
  const l = (e) => seen.push(e.to);
  p.on('stateChanged', l);
  p.forceOpen();
  p.off('stateChanged', l);
  p.reset();
  assert.deepEqual(seen, ['forcedOpen']);
  p.dispose();
});

test('a success the core can report untimed reads the clock once per call; failures and retries read it', async () => {
  const perf = globalThis.performance;
  const original = perf.now;
  let reads = 0;
  // mock.method, not an assignment: Node 18's performance.now is read-only.
  const counting = mock.method(perf, 'now', function now() {
    reads++;
    return original.call(perf);
  });
  try {
    const p = new Pipeline({ circuitBreaker: {}, retry: { maxRetries: 1, backoff: { type: 'constant', base: 1 } }, timeout: { perAttempt: '5s' } });
    await p.execute(async () => 0); // arms the pipeline's deadline timer (a clock read)
    reads = 0;
    assert.equal(await p.execute(async () => 1), 1);
    assert.equal(reads, 1, 'start reads it; the success report does not');
    let n = 0;
    reads = 0;
    assert.equal(await p.execute(async () => (++n === 1 ? Promise.reject(Object.assign(new Error('x'), { status: 503 })) : 2)), 2);
    assert.ok(reads >= 3, `a failure, its backoff and the retry read the clock (${reads})`);
    assert.equal(p.stats().succeeded, 3);
    // A rate rule's window ages by time: its success is reported at the clock's instant.
    const rate = new Pipeline({ circuitBreaker: { trip: { failureRate: 0.5, window: { calls: 4 } } } });
    reads = 0;
    assert.equal(await rate.execute(async () => 3), 3);
    assert.equal(reads, 2);
    // The general loop takes the same shortcut.
    reads = 0;
    assert.equal(await p.execute(async () => 4, { fallback: 0 }), 4);
    assert.equal(reads, 1);
    p.dispose();
    rate.dispose();
  } finally {
    counting.mock.restore();
  }
});
