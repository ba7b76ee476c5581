// HealthChecker: concurrent checks with timeouts, the report, the HTTP handler; loadPolicies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
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
