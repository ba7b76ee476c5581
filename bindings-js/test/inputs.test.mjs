// Bad input: broken clocks, wrong config types, unknown fields, bad arguments. Every one is a
// typed error (or, for time going backwards, clamped by the core); none is a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, CircuitBreaker, RateLimiter, Bulkhead, HealthChecker, ConfigError, CircuitOpenError } from 'tripwire';
import { FakeClock } from 'tripwire/testing';

const brokenClock = (value) => ({ now: () => value, sleep: () => Promise.resolve() });

for (const bad of [NaN, Infinity, -Infinity, undefined, '12', null]) {
  test(`a clock returning ${String(bad)} is a TypeError, and no call is begun`, async () => {
    const p = new Pipeline({ circuitBreaker: {}, bulkhead: { maxConcurrent: 1 } }, { clock: brokenClock(bad) });
    await assert.rejects(p.execute(async () => 1), (e) => e instanceof TypeError && /clock\.now\(\) must return a finite number/.test(e.message));
    assert.equal(p.stats().calls, 0);
    const b = new CircuitBreaker({}, { clock: brokenClock(bad) });
    await assert.rejects(b.execute(async () => 1), TypeError);
    assert.equal(b.stats().admitted, 0);
    const l = new RateLimiter({ rate: '1/s' }, { clock: brokenClock(bad) });
    assert.throws(() => l.check(), TypeError);
    for (const x of [p, b, l]) x.dispose();
  });
}

test('a clock that breaks mid-call: the call is cancelled, nothing leaks', async () => {
  let now = 0;
  const clock = { now: () => now, sleep: () => Promise.resolve() };
  const p = new Pipeline({ bulkhead: { maxConcurrent: 1, maxQueue: 0 } }, { clock });
  await assert.rejects(
    p.execute(async () => {
      now = NaN;
      return 1;
    }),
    TypeError,
  );
  now = 5;
  assert.equal(p.stats().bulkhead.inFlight, 0, 'the slot was given back');
  assert.equal(await p.execute(async () => 'again'), 'again');
  p.dispose();
});

test('negative times and a clock going backwards are clamped: an open breaker stays open', async () => {
  const clock = new FakeClock(1000);
  const b = new CircuitBreaker({ trip: { consecutiveFailures: 1 }, openDuration: 1000 }, { clock });
  await assert.rejects(b.execute(async () => Promise.reject(new Error('x'))));
  assert.equal(b.state, 'open');
  for (const t of [-5000, 0, 500, 999]) {
    clock.set(t);
    await assert.rejects(b.execute(async () => 1), (e) => e instanceof CircuitOpenError && e.retryAfter === 1000);
  }
  clock.set(2000);
  assert.equal(await b.execute(async () => 'probe'), 'probe');
  b.dispose();
});

test('wrong config types name the field and the reason', () => {
  const cases = [
    [{ bulkhead: { maxConcurrent: 'ten' } }, 'bulkhead.maxConcurrent', /^bulkhead\.maxConcurrent: invalid type/],
    [{ retry: { maxRetries: -1 } }, 'retry.maxRetries', /invalid value/],
    [{ retry: { maxRetries: 1.5 } }, 'retry.maxRetries', /invalid type|invalid value/],
    [{ timeout: { perAttempt: '5 parsecs' } }, 'timeout.perAttempt', /invalid duration/],
    [{ timeout: { perAttempt: '500' } }, 'timeout.perAttempt', /a string needs a unit/],
    [{ timeout: { overall: -5 } }, 'timeout.overall', /must be >= 0, got -5/],
    [{ rateLimit: { rate: 'fast' } }, 'rateLimit.rate', /invalid rate "fast"/],
    [{ circuitBreaker: { trip: { failureRate: 'half' } } }, 'circuitBreaker.trip.failureRate', /invalid type/],
    [{ order: ['cache'] }, 'order[0]', /unknown variant `cache`/],
    [{ retry: true }, 'retry', /invalid type/],
  ];
  for (const [config, path, message] of cases) {
    assert.throws(
      () => new Pipeline(config),
      (e) => {
        assert.ok(e instanceof ConfigError, `${JSON.stringify(config)}: ${e}`);
        assert.equal(e.code, 'invalidConfig');
        assert.equal(e.path, path, JSON.stringify(config));
        assert.match(e.message, message);
        return true;
      },
    );
  }
});

test('unknown fields are errors, at every level', () => {
  assert.throws(() => new Pipeline({ retry: { maxRetrys: 3 } }), (e) => e.path === 'retry.maxRetrys' && /unknown field `maxRetrys`, expected one of/.test(e.message));
  assert.throws(() => new Pipeline({ circuitbreaker: {} }), (e) => e.path === 'circuitbreaker');
  assert.throws(() => new CircuitBreaker({ halfOpen: { permitedCalls: 1 } }), (e) => e instanceof ConfigError && e.path === 'halfOpen.permitedCalls');
  assert.throws(() => new Bulkhead({ maxConcurent: 1 }), ConfigError);
  assert.throws(() => new RateLimiter({ rate: '1/s', brust: 3 }), ConfigError);
  assert.throws(() => new HealthChecker().register('db', async () => {}, { critcal: false }), (e) => e instanceof ConfigError && e.path.startsWith('checks.db'));
});

test('configs that are not objects, or hold values JSON cannot, are ConfigErrors', () => {
  for (const config of [42, 'not json', true, { timeout: { perAttempt: Infinity } }, { timeout: { perAttempt: NaN } }, { seed: -1 }]) {
    assert.throws(() => new Pipeline(config), ConfigError, JSON.stringify(config) ?? String(config));
  }
  assert.throws(() => new CircuitBreaker(null), ConfigError);
  assert.throws(() => new Pipeline({ retry: { backoff: { base: NaN } } }), (e) => e.message === 'retry.backoff.base: must be a finite number, got NaN');
  assert.throws(() => new Pipeline({ order: ['retry', Infinity] }), (e) => e.path === 'order[1]');
  assert.throws(() => new Pipeline({ fallback: { on: [() => 1] } }), (e) => e.path === 'fallback.on[0]' && /not a function/.test(e.message));
  // A property set to undefined is not set: the default applies, as in JSON.
  const p = new Pipeline({ timeout: { perAttempt: undefined } }, { clock: new FakeClock() });
  assert.equal(p.stats().calls, 0);
  p.dispose();
  // Config text is parsed as JSON.
  assert.equal(new Pipeline('{"retry": {"maxRetries": 1}}').stats().retry.retries, 0);
});

test('bad arguments are TypeErrors', async () => {
  const p = new Pipeline({});
  await assert.rejects(p.execute('not a function'), TypeError);
  await assert.rejects(p.execute(async () => 1, { deadline: 'tomorrow' }), TypeError);
  await assert.rejects(p.execute(async () => 1, { deadline: NaN }), TypeError);
  await assert.rejects(p.execute(async () => 1, { deadline: new Date('nope') }), TypeError);
  assert.throws(() => new Pipeline({}, { clock: {} }), TypeError);
  assert.throws(() => new Pipeline({}, { retryable: 3 }), TypeError);
  assert.throws(() => new Pipeline({}, { name: 3 }), TypeError);
  const b = new CircuitBreaker({});
  await assert.rejects(b.execute(undefined), TypeError);
  const l = new RateLimiter({ rate: '10/s' });
  for (const cost of [-1, 1.5, NaN, Infinity, '1']) assert.throws(() => l.check(cost), TypeError, String(cost));
  assert.deepEqual(l.check(2 ** 64), { allowed: false, retryAfter: Infinity, wait: 0 }, 'a huge cost never passes');
  assert.deepEqual(l.check(0), { allowed: true, retryAfter: 0, wait: 0 });
  for (const x of [p, b, l]) x.dispose();
});

test('a retryable predicate that throws: the failure counts, is not retried, and is reported', async () => {
  const runners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  const reported = new Promise((resolve) => process.once('uncaughtException', resolve));
  try {
    const p = new Pipeline({ retry: { maxRetries: 3, backoff: { base: 0 } } }, {
      retryable: () => {
        throw new Error('predicate bug');
      },
    });
    let n = 0;
    await assert.rejects(p.execute(async () => Promise.reject(new Error(`attempt ${++n}`))), /attempt 1/);
    assert.equal(n, 1);
    assert.equal((await reported).message, 'predicate bug');
    p.dispose();
  } finally {
    for (const l of runners) process.on('uncaughtException', l);
  }
});

// The texts below were recorded from the build before the config route changed (configs read by
// serde-wasm-bindgen into a serde_json::Value, then through serde_path_to_error); the tree route
// of tripwire-js-serde must give the very same (the list of fields has since gained `store`).
// The raw API takes JS values as they are (the idiomatic classes first reduce a config to what
// JSON holds).
test('the raw API reads any JS value as the serde-wasm-bindgen route did, texts included', async () => {
  const { raw } = await import('tripwire/raw');
  const { default: vm } = await import('node:vm');
  const ctx = vm.createContext({});
  const cases = [
    [5n, 'invalid type: integer `5`, expected struct PipelineConfig'],
    [2n ** 70n, "not a config value: Error: Couldn't deserialize i64 or u64 from a BigInt outside i64::MIN..u64::MAX bounds"],
    [Symbol('s'), 'not a config value: Error: invalid type: JsValue(Symbol(s)), expected any valid JSON value'],
    [new Map([['retry', { maxRetries: 1 }]]), null],
    [new Map([[1, 2]]), 'not a config value: Error: invalid type: floating point `1.0`, expected a string key'],
    [new Uint8Array(2), 'not a config value: Error: invalid type: byte array, expected any valid JSON value'],
    [new Set([1]), 'not a config value: Error: invalid type: JsValue(Set), expected any valid JSON value'],
    // An array from another realm is read as an array (and an array is no pipeline config).
    [vm.runInContext('[{"rate": "5/s"}]', ctx), 'invalid type: sequence, expected struct PipelineConfig'],
    [{ timeout: ['1s'] }, 'timeout: invalid type: sequence, expected struct TimeoutConfig'],
    [{ zeta: 1, Alpha: 2 }, 'Alpha: unknown field `Alpha`, expected one of `rateLimit`, `bulkhead`, `circuitBreaker`, `retry`, `timeout`, `fallback`, `order`, `seed`, `keyed`, `store`'],
    [{ retry: { maxRetries: 1e300 } }, 'retry.maxRetries: invalid type: floating point `1e+300`, expected u32'],
    [{ retry: { maxRetries: 1658206780088562.25 } }, 'retry.maxRetries: invalid type: floating point `1658206780088562.2`, expected u32'],
    [{ retry: { maxRetries: 0.000015 } }, 'retry.maxRetries: invalid type: floating point `0.000015`, expected u32'],
    [{ seed: 2 ** 64 }, 'seed: invalid type: floating point `1.8446744073709552e+19`, expected u64'],
    [{ retry: { backoff: { jitter: { full: 1 } } } }, 'retry.backoff.jitter.full: invalid type: integer `1`, expected unit'],
    [{ rateLimit: [{ rate: '5/s' }, { rate: 'x' }] }, 'rateLimit[1].rate: invalid rate "x": expected "N/unit" such as "50/s" or "1000/m"'],
  ];
  for (const [value, expected] of cases) {
    let got = null;
    try {
      raw.validateConfig('pipeline', value);
    } catch (e) {
      assert.equal(e.code, 'invalidConfig');
      got = e.message;
    }
    assert.equal(got, expected, String(typeof value === 'symbol' ? 'symbol' : JSON.stringify(value, (k, v) => (typeof v === 'bigint' ? `${v}n` : v))));
  }
});
