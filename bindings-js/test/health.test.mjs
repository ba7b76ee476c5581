// HealthChecker: concurrent checks with timeouts, the report, the HTTP handler; loadPolicies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { HealthChecker, CircuitBreaker, Pipeline, loadPolicies, ConfigError } from 'tripwire';
import { FakeClock } from 'tripwire/testing';

test('check() runs every check concurrently, each bounded by its timeout', async () => {
  const clock = new FakeClock();
  const health = new HealthChecker(undefined, { clock });
  const started = [];
  health.register('db', async () => {
    started.push(['db', clock.now()]);
    await clock.sleep(12);
  }, { timeout: 100 });
  health.register('cache', async () => {
    started.push(['cache', clock.now()]);
    throw new Error('connection refused');
  }, { critical: false });
  let aborted;
  health.register('search', ({ signal }) => {
    started.push(['search', clock.now()]);
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject((aborted = signal.reason))));
  }, { timeout: 50, critical: false });
  const events = [];
  health.on('statusChanged', (e) => events.push(`${e.from}->${e.to}`));
  health.on('timedOut', (e) => events.push(`timedOut ${e.check}`));
  const pending = health.check();
  await clock.advance(100);
  const report = await pending;
  assert.deepEqual(started, [['cache', 0], ['db', 0], ['search', 0]], 'all started at once, in name order');
  assert.equal(report.status, 'degraded');
  assert.match(report.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(report.checks.db, { status: 'healthy', critical: true, latencyMs: 12, error: null, consecutiveFailures: 0, consecutiveSuccesses: 1 });
  assert.equal(report.checks.cache.status, 'unhealthy');
  assert.equal(report.checks.cache.error, 'connection refused');
  assert.equal(report.checks.search.error, 'timeout');
  assert.equal(report.checks.search.latencyMs, 50);
  assert.ok(aborted instanceof Error && aborted.code === 'timeout');
  assert.equal(health.status, 'degraded');
  // db passing at 12 leaves only non-critical checks failing; search times out at 50.
  assert.deepEqual(events, ['unhealthy->degraded', 'timedOut search']);
  assert.equal(health.stats().timeouts, 1);
  health.dispose();
});

test('a failing critical check makes the report unhealthy; a check returning false fails', async () => {
  const health = new HealthChecker();
  health.register('db', async () => false);
  const report = await health.check();
  assert.equal(report.status, 'unhealthy');
  assert.equal(report.checks.db.error, 'check returned false');
  assert.equal(health.unregister('db'), true);
  assert.equal(health.unregister('db'), false);
  assert.equal((await health.check()).status, 'healthy');
  health.dispose();
});

test('checks declared in the config get their function from register(name, fn)', async () => {
  const health = new HealthChecker({ checks: { db: { timeout: '2s', critical: false }, queue: {} } });
  health.register('db', async () => {});
  const report = await health.check();
  assert.equal(report.checks.db.status, 'healthy');
  assert.equal(report.checks.db.critical, false);
  assert.match(report.checks.queue.error, /no function registered/);
  assert.throws(() => new HealthChecker({ checks: { db: { failureThreshold: 0 } } }), (e) => e instanceof ConfigError && e.path === 'checks.db.failureThreshold');
  assert.throws(() => health.register('x', async () => {}, { timeot: 5 }), (e) => e instanceof ConfigError && e.path.startsWith('checks.x'));
  health.dispose();
});

test('an open breaker makes the report degraded and is listed', async () => {
  const health = new HealthChecker();
  const breaker = new CircuitBreaker({});
  const pipeline = new Pipeline({ circuitBreaker: {} });
  health.register('ok', async () => {}).addBreaker('payments', breaker).addBreaker('search', pipeline);
  assert.equal((await health.check()).status, 'healthy');
  breaker.forceOpen();
  const report = await health.check();
  assert.equal(report.status, 'degraded');
  assert.deepEqual(report.breakers, { payments: { state: 'forcedOpen' }, search: { state: 'closed' } });
  assert.throws(() => health.addBreaker('bad', {}), TypeError);
  for (const x of [health, breaker, pipeline]) x.dispose();
});

test('healthHandler() serves the report over node:http with 200 / 503', async () => {
  const health = new HealthChecker();
  let dbUp = true;
  health.register('db', async () => {
    if (!dbUp) throw new Error('db down');
  });
  health.register('metrics', async () => {
    throw new Error('optional');
  }, { critical: false });
  const server = createServer(health.healthHandler());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/health`;
  try {
    let res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    let body = await res.json();
    assert.equal(body.status, 'degraded');
    assert.equal(body.checks.metrics.error, 'optional');
    dbUp = false;
    res = await fetch(url);
    assert.equal(res.status, 503);
    body = await res.json();
    assert.equal(body.status, 'unhealthy');
    assert.equal(body.checks.db.error, 'db down');
  } finally {
    await new Promise((resolve) => server.close(resolve));
    health.dispose();
  }
});

test('start() runs each check at its interval on one timer; stop() ends it, start() resumes', async () => {
  const clock = new FakeClock();
  const health = new HealthChecker(undefined, { clock });
  const runs = [];
  health.register('a', async () => void runs.push(`a@${clock.now()}`), { interval: 1000 });
  health.register('b', async () => void runs.push(`b@${clock.now()}`), { interval: 2500 });
  await clock.advance(0);
  assert.deepEqual(runs, [], 'nothing runs before start()');
  assert.equal(clock.pending, 0);
  assert.equal(health.start(), health);
  health.start(); // a second start() does nothing
  await clock.advance(0);
  assert.deepEqual(runs, ['a@0', 'b@0'], 'a new check is due at once');
  assert.equal(clock.pending, 1, 'one timer between runs');
  await clock.advance(5000);
  assert.deepEqual(runs, ['a@0', 'b@0', 'a@1000', 'a@2000', 'b@2500', 'a@3000', 'a@4000', 'a@5000', 'b@5000']);
  assert.equal(clock.pending, 1);
  assert.equal(health.report().checks.a.consecutiveSuccesses, 6);

  assert.equal(health.stop(), health);
  assert.equal(clock.pending, 0, 'stop() cancels the timer');
  await clock.advance(10_000);
  assert.equal(runs.length, 9, 'no run after stop()');

  health.start();
  await clock.advance(0);
  assert.deepEqual(runs.slice(9), ['a@15000', 'b@15000'], 'overdue checks run at once on restart');
  // A check registered while running periodically is due at once too.
  health.register('c', async () => void runs.push(`c@${clock.now()}`), { interval: 700 });
  await clock.advance(0);
  assert.deepEqual(runs.slice(11), ['c@15000']);
  await clock.advance(1000);
  assert.deepEqual(runs.slice(12), ['c@15700', 'a@16000']);
  health.dispose();
});

test('periodic results go through the thresholds: the report and the events show the hysteresis', async () => {
  const clock = new FakeClock();
  const health = new HealthChecker(undefined, { clock });
  const results = [false, false, true, true, false, true];
  let run = 0;
  health.register('db', async () => {
    if (!results[run++]) throw new Error('db down');
  }, { interval: 100, failureThreshold: 2, successThreshold: 2 });
  const events = [];
  health.on('checkChanged', (e) => events.push(`${e.check} ${e.from}->${e.to} at ${e.at}`));
  health.on('statusChanged', (e) => events.push(`status ${e.from}->${e.to} at ${e.at}`));
  health.start();
  const seen = [];
  for (let i = 0; i < results.length; i++) {
    await clock.advance(i === 0 ? 0 : 100);
    const { status, checks } = health.report();
    const db = checks.db;
    seen.push(`${clock.now()}: ${db.status} f${db.consecutiveFailures} s${db.consecutiveSuccesses} ${db.error ?? '-'} => ${status}`);
  }
  assert.deepEqual(seen, [
    '0: pending f1 s0 db down => unhealthy',
    '100: unhealthy f2 s0 db down => unhealthy',
    '200: unhealthy f0 s1 - => unhealthy',
    '300: healthy f0 s2 - => healthy',
    '400: healthy f1 s0 db down => healthy',
    '500: healthy f0 s1 - => healthy',
  ]);
  assert.deepEqual(events, ['db pending->unhealthy at 100', 'db unhealthy->healthy at 300', 'status unhealthy->healthy at 300']);
  assert.equal(health.status, 'healthy');
  health.dispose();
});

test('a periodic run that outlasts its interval makes its check due the moment it ends; a hung one times out', async () => {
  const clock = new FakeClock();
  const health = new HealthChecker(undefined, { clock });
  const starts = [];
  health.register('slow', async () => {
    starts.push(clock.now());
    await clock.sleep(250);
  }, { interval: 100, timeout: 1000 });
  let hung = 0;
  health.register('hung', ({ signal }) => {
    hung++;
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
  }, { interval: 2000, timeout: 300, critical: false });
  health.start();
  await clock.advance(600);
  assert.deepEqual(starts, [0, 250, 500]);
  const report = health.report();
  // Keys in order, as Python's and C's JSON reports have them.
  assert.deepEqual(Object.keys(report), ['breakers', 'checks', 'status', 'timestamp']);
  assert.deepEqual(Object.keys(report.checks.hung), ['consecutiveFailures', 'consecutiveSuccesses', 'critical', 'error', 'latencyMs', 'status']);
  assert.equal(report.checks.hung.error, 'timeout');
  assert.equal(report.checks.hung.latencyMs, 300);
  assert.equal(hung, 1, 'the hung check is not due again before its interval');
  await clock.advance(1500);
  assert.equal(hung, 2);
  health.dispose();
});

test('runDue() runs only the due checks and resolves with the ms until the next one', async () => {
  const clock = new FakeClock();
  const health = new HealthChecker(undefined, { clock });
  assert.equal(await health.runDue(), null, 'no checks, nothing due');
  const runs = [];
  health.register('a', async () => void runs.push(`a@${clock.now()}`), { interval: 1000 });
  health.register('b', async () => void runs.push(`b@${clock.now()}`), { interval: 300 });
  assert.equal(await health.runDue(), 300);
  assert.deepEqual(runs, ['a@0', 'b@0']);
  await clock.advance(100);
  assert.equal(await health.runDue(), 200);
  assert.equal(runs.length, 2, 'nothing was due');
  await clock.advance(250);
  assert.equal(await health.runDue(), 300, 'b ran late, at 350: its next run is 300 after that start');
  assert.deepEqual(runs.slice(2), ['b@350']);
  await clock.advance(2000);
  assert.equal(await health.runDue(), 300);
  assert.deepEqual(runs.slice(3), ['a@2350', 'b@2350']);
  // runDue() waits for its runs: the answer counts from when they have settled.
  health.register('slow', () => clock.sleep(40), { interval: 5000, timeout: 60 });
  const pending = health.runDue();
  await clock.advance(40);
  assert.equal(await pending, 260, 'b next at 2650, 260 ms after the slow run ended at 2390');
  health.dispose();
});

test('dispose() ends periodic mode; start() after it throws', async () => {
  const clock = new FakeClock();
  const health = new HealthChecker(undefined, { clock });
  let runs = 0;
  health.register('a', async () => void runs++, { interval: 100 });
  health.start();
  await clock.advance(250);
  assert.equal(runs, 3);
  health.dispose();
  assert.equal(clock.pending, 0, 'the timer is cancelled');
  await clock.advance(1000);
  assert.equal(runs, 3);
  assert.throws(() => health.start(), /disposed/);
  health.stop(); // harmless
});

test('on the system clock the periodic timer does not keep Node running', () => {
  const code = `
    import { HealthChecker } from 'tripwire';
    const health = new HealthChecker();
    health.register('tick', async () => console.log('ran'), { interval: 50 });
    health.start();
  `;
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.error, undefined, 'the process exited by itself');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'ran\n', 'the first run happened at start(), then nothing held the loop');
});

test('loadPolicies: object or JSON text; named pipelines, each its own state', async () => {
  const text = JSON.stringify({
    seed: 7,
    policies: {
      payments: { circuitBreaker: { trip: { consecutiveFailures: 1 } } },
      search: { timeout: { perAttempt: '250ms' }, retry: { maxRetries: 1, backoff: { base: 0 } } },
    },
  });
  const policies = loadPolicies(text);
  assert.deepEqual(policies.names(), ['payments', 'search']);
  const payments = policies.get('payments');
  assert.ok(payments instanceof Pipeline);
  assert.equal(policies.get('payments'), payments, 'the same pipeline every time');
  assert.equal(payments.name, 'payments');
  await assert.rejects(payments.execute(async () => Promise.reject(new Error('x'))));
  assert.equal(payments.state, 'open');
  assert.equal(policies.get('search').state, null);
  assert.equal(await policies.get('search').execute(async () => 'found'), 'found');
  assert.match(payments.prometheus(), /tripwire_calls_total\{pipeline="payments"\} 1/);
  assert.throws(() => policies.get('nope'), RangeError);
  policies.dispose();
  assert.throws(() => payments.stats(), /disposed/);
  assert.throws(() => policies.names(), /disposed/);
});

test('loadPolicies: refusals name the field path', () => {
  assert.throws(
    () => loadPolicies({ policies: { api: { circuitbreaker: {} } } }),
    (e) => e instanceof ConfigError && e.code === 'invalidConfig' && e.path === 'policies.api.circuitbreaker' && /unknown field `circuitbreaker`/.test(e.message),
  );
  assert.throws(
    () => loadPolicies({ policies: { api: { circuitBreaker: { halfOpen: { permittedCalls: 0 } } } } }),
    (e) => e.message === 'policies.api.circuitBreaker.halfOpen.permittedCalls: must be >= 1, got 0',
  );
  assert.throws(() => loadPolicies('{nope'), (e) => e instanceof ConfigError && e.message.startsWith('invalid JSON'));
  assert.throws(() => loadPolicies({}), (e) => e instanceof ConfigError && /missing field `policies`/.test(e.message));
});
