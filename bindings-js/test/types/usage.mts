// Type-checked (tsc --noEmit) as a user's TypeScript would use the package; not run.
import {
  Pipeline,
  CircuitBreaker,
  RateLimiter,
  Bulkhead,
  HealthChecker,
  loadPolicies,
  CircuitOpenError,
  RetriesExhaustedError,
  ConfigError,
  TripwireError,
  type PolicyEvent,
  type HealthReport,
} from 'tripwire';
import { FakeClock } from 'tripwire/testing';
import { raw, out } from 'tripwire/raw';

const clock = new FakeClock();
const pipeline = new Pipeline({ retry: { maxRetries: 2 }, timeout: { perAttempt: '2s' } }, { clock, name: 'api', retryable: (e) => (e instanceof TypeError ? true : 'ignore') });
const n: Promise<number> = pipeline.execute(async ({ signal, attempt }) => {
  const aborted: boolean = signal.aborted;
  return attempt + (aborted ? 1 : 0);
}, { deadline: pipeline.clock.now() + 500, fallback: [() => 1, 2] });
pipeline.on('stateChanged', (e) => {
  const to: string = e.to;
  void to;
});
pipeline.on('*', (e: PolicyEvent) => void e.at);
const state: string | null = pipeline.state;
const text: string = pipeline.prometheus();
const calls: number = pipeline.stats().calls;

const breaker = new CircuitBreaker({ trip: { consecutiveFailures: 3 } });
const s: 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled' = breaker.state;
breaker.restore(breaker.toJSON());

const limiter = new RateLimiter({ rate: '10/s' });
const { allowed, retryAfter } = limiter.check(2);

const bulkhead = new Bulkhead({ maxConcurrent: 2 });
const b: Promise<string> = bulkhead.execute(async () => 'x', { signal: AbortSignal.timeout(100) });

const health = new HealthChecker();
health.register('db', async ({ signal }) => signal.aborted, { timeout: 500, critical: false });
const report: Promise<HealthReport> = health.check();
const nextDue: Promise<number | null> = health.runDue();
const lastReport: HealthReport = health.start().stop().report();
const handler = health.healthHandler();

const policies = loadPolicies('{"policies": {"a": {}}}');
const a: Pipeline = policies.get('a');
const names: string[] = policies.names();

try {
  new Pipeline({ retry: { maxRetrys: 1 } });
} catch (e) {
  if (e instanceof ConfigError) console.log(e.path, e.issues[0].reason);
  if (e instanceof CircuitOpenError) console.log(e.retryAfter);
  if (e instanceof RetriesExhaustedError) console.log(e.attempts, e.cause);
  if (e instanceof TripwireError) console.log(e.code);
}

const live: number = raw.liveObjects();
const view: Float64Array = out();
{
  using p = new Pipeline({});
  void p;
}
void [n, state, text, calls, s, allowed, retryAfter, b, report, nextDue, lastReport, handler, a, names, live, view];
