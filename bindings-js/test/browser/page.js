// Loaded by test/browser.test.mjs in headless Chromium: the web build (dist/web) replays every
// conformance vector and runs a pipeline against a flaky function, then reports to the test.
import { Pipeline, CircuitOpenError, RetriesExhaustedError, TimeoutError, ConfigError } from '/dist/web/index.js';
import * as T from '/dist/web/raw.js';
import { runVector } from '/test/vector-runner.js';

async function vectors() {
  const names = await (await fetch('/vectors/index.json')).json();
  const failures = [];
  for (const name of names) {
    const vector = await (await fetch(`/vectors/${name}`)).json();
    try {
      runVector(T, vector);
    } catch (e) {
      failures.push(`${name}: ${e.message}`);
    }
  }
  return { count: names.length, failures };
}

async function scenario() {
  const pipeline = new Pipeline({
    circuitBreaker: { trip: { consecutiveFailures: 2 }, openDuration: '10s' },
    retry: { maxRetries: 2, backoff: { type: 'constant', base: 5, jitter: 'none' } },
    timeout: { perAttempt: 50 },
  });
  const events = [];
  pipeline.on('*', (e) => events.push(e.type === 'stateChanged' ? `${e.from}->${e.to}` : e.type));
  const log = [];
  // Call 1: the first attempt hangs until its signal aborts (timeout), the second gets a 503,
  // the third succeeds.
  let attempt = 0;
  const first = await pipeline.execute(async ({ signal }) => {
    attempt++;
    log.push(`attempt ${attempt}`);
    if (attempt === 1) {
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    }
    if (attempt === 2) throw Object.assign(new Error('busy'), { status: 503 });
    return 'flaky but fine';
  });
  // Calls 2 and 3: always failing, retried to exhaustion; two failed calls open the breaker.
  const outcomes = [];
  for (let i = 0; i < 3; i++) {
    try {
      await pipeline.execute(async () => {
        throw new Response('down', { status: 503 });
      });
    } catch (e) {
      outcomes.push(e instanceof RetriesExhaustedError ? `retriesExhausted(${e.attempts})` : e instanceof CircuitOpenError ? `circuitOpen(${Math.round(e.retryAfter / 1000)}s)` : String(e));
    }
  }
  const fallback = await pipeline.execute(async () => 'unreachable', { fallback: [() => Promise.reject(new Error('cache miss')), 'default'] });
  const stats = pipeline.stats();
  const timeoutIsError = new TimeoutError() instanceof Error;
  pipeline.dispose();
  return { first, attempts: attempt, log, outcomes, fallback, events, calls: stats.calls, state: stats.state, timeoutIsError, userAgent: navigator.userAgent };
}

// The browser module has no shared store: each way to ask for one is refused by name.
function refusal(f) {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return `${e instanceof ConfigError ? 'ConfigError' : e.code}: ${e.message}`;
  }
}

function noStore() {
  const limit = { rateLimit: { rate: '10/s' } };
  return {
    store: refusal(() => new Pipeline({ ...limit, store: { key: 'k' } })),
    share: refusal(() => new Pipeline({ circuitBreaker: { share: { mode: 'signal' } } })),
    option: refusal(() => new Pipeline(limit, { store: { run: async () => 'unavailable' } })),
    limiter: refusal(() => new T.SharedLimiter({ ...limit, store: { key: 'k' } })),
    storeNull: refusal(() => new Pipeline({ ...limit, store: null }).dispose()),
  };
}

try {
  window.__results = { vectors: await vectors(), scenario: await scenario(), noStore: noStore() };
} catch (e) {
  window.__results = { error: `${e.name}: ${e.message}\n${e.stack}` };
}
