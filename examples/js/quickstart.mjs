// tripwire quick start in JavaScript (Node ≥ 18): a flaky HTTP service on 127.0.0.1, called
// through the "api" pipeline of examples/policies/default.json (rate limit, bulkhead, retry
// with a budget, circuit breaker, timeouts, fallback). The service answers for 1 s, fails with
// 503s for 3.5 s, then recovers; the program prints the retries, the breaker's trips, the
// fallbacks and the recovery from the pipeline's events, and ends by itself.
//
// Only Node's own modules besides tripwire: node:http is the service, fetch the client. A 503
// Response thrown by the function is retryable as it is (tripwire reads its `status`, and
// honours its Retry-After header), so the function just throws it.
//
// Run: npm install && node quickstart.mjs [path/to/policies.json]     (in examples/js)

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadPolicies, ConfigError } from 'tripwire';

// How the embedded service behaves, by time since it started (ms).
const HEALTHY_UNTIL = 1000;
const BROKEN_UNTIL = 4500;
// How long the program runs, and how often it calls (ms).
const RUN_FOR = 8500;
const EVERY = 100;

const POLICIES = fileURLToPath(new URL('../policies/default.json', import.meta.url));

// The pipeline's clock is performance.now() (ms); the service, the calls and the events share it.
const origin = performance.now();
const secs = (at = performance.now()) => ((at - origin) / 1000).toFixed(2).padStart(6);
const num = (n) => String(n).padStart(2);

/**
 * One attempt: `GET /price`. `signal` aborts when the attempt's timeout (the file's
 * `timeout.perAttempt`) passes. A non-2xx Response is thrown: 5xx and 429 are retried, other
 * 4xx are the caller's fault (ignored by the breaker, not retried).
 */
async function fetchPrice(url, { signal }) {
  const response = await fetch(url, { signal });
  const body = await response.text(); // read it either way: that frees the connection
  if (!response.ok) throw response;
  return { price: Number(body.split('=')[1]), source: 'the service' };
}

/** The fallback, for every kind listed in the file's `fallback.on` (a TripwireError). */
function fromCache(error) {
  let why = error.code;
  if (error.retryAfter !== undefined) why += `, retry after ${error.retryAfter.toFixed(0)} ms`;
  return { price: 40, source: 'the cache', why };
}

/** A call's error, when no fallback applied: a TripwireError, or a Response the function threw. */
function describe(error) {
  return error instanceof Response ? `HTTP ${error.status}` : `${error.name}: ${error.message}`;
}

/** What happened, printed in order; runs of plain successes become one line. */
class Log {
  oks = null; // [first call, last call, when] of the current run of successes
  fallbacks = 0;
  opened = 0;
  closed = 0;

  ok(n) {
    const [first, , at] = this.oks ?? [n, n, secs()];
    this.oks = [first, n, at];
  }

  line(text) {
    this.flush();
    console.log(text);
  }

  flush() {
    if (this.oks === null) return;
    const [first, last, at] = this.oks;
    this.oks = null;
    const calls = first === last ? `call ${num(first)}` : `calls ${first}-${last}`;
    console.log(`${at}s  ${calls}  ok, price=42 from the service at the first attempt`);
  }

  // -- the pipeline's events (emitted during execute(), in order with the calls) -------------

  stateChanged = (e) => {
    if (e.to === 'open') this.opened++;
    else if (e.to === 'closed') this.closed++;
    this.line(`${secs(e.at)}s  ── breaker ${e.from} → ${e.to}`);
  };

  retryScheduled = (e) => {
    this.line(`${secs(e.at)}s            retry: attempt ${e.attempt} in ${e.delay.toFixed(0)} ms`);
  };
}

/** The flaky service on an ephemeral port; resolves with the server. */
function startFlakyService() {
  const server = createServer((request, response) => {
    const t = performance.now() - origin;
    if (t >= HEALTHY_UNTIL && t < BROKEN_UNTIL) {
      response.writeHead(503, { 'content-length': 10 }).end('overloaded');
    } else {
      setTimeout(() => response.writeHead(200, { 'content-length': 8 }).end('price=42'), 5);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function main(argv) {
  const path = argv[2] ?? POLICIES;
  let policies;
  try {
    policies = loadPolicies(readFileSync(path, 'utf8'));
  } catch (e) {
    if (e instanceof ConfigError) {
      // Every issue of a bad file, each with its field path.
      for (const { path: field, reason } of e.issues) console.log(`${path}: ${field}: ${reason}`);
    } else {
      console.log(`cannot read ${path}: ${e.message}`);
    }
    return 1;
  }
  const api = policies.get('api');

  const server = await startFlakyService();
  try {
    const url = `http://127.0.0.1:${server.address().port}/price`;
    const log = new Log();
    api.on('stateChanged', log.stateChanged);
    api.on('retryScheduled', log.retryScheduled);
    console.log(`tripwire quick start: pipeline "api" from ${path}`);
    console.log(`flaky service on ${url}: healthy, then 503s from 1 s to 4.5 s, then healthy\n`);

    let n = 0;
    let next = origin;
    while (performance.now() - origin < RUN_FOR) {
      n++;
      let attempts = 0;
      const started = performance.now();
      let quote;
      try {
        quote = await api.execute(
          (attempt) => {
            attempts = attempt.attempt;
            return fetchPrice(url, attempt);
          },
          { fallback: fromCache },
        );
      } catch (error) {
        quote = { error }; // no fallback applied (not this file's case)
      }
      const took = Math.floor(performance.now() - started);
      const call = `${secs()}s  call ${num(n)}`;
      if (quote.error !== undefined) {
        log.line(`${call}  error     ${describe(quote.error)}  (${took} ms)`);
      } else if (quote.source === 'the cache') {
        log.fallbacks++;
        log.line(`${call}  fallback  price=${quote.price} from the cache (${quote.why})  (${took} ms)`);
      } else if (attempts > 1) {
        log.line(`${call}  ok        price=${quote.price} from the service (${attempts} attempt(s))  (${took} ms)`);
      } else {
        log.ok(n);
      }
      // One call every 100 ms, or right away when the last one took longer.
      next = Math.max(next + EVERY, performance.now());
      await sleep(next - performance.now());
    }

    log.flush();
    const stats = api.stats();
    console.log(
      `\n${stats.calls} calls: ${stats.succeeded} answered by the service, ` +
        `${log.fallbacks} by the fallback; ${stats.attempts} requests reached it; ` +
        `the breaker opened ${log.opened} time(s) and closed again ${log.closed} time(s)`,
    );
    // The example checks its own story, so that it cannot rot silently in CI.
    const recovered = api.state === 'closed';
    if (log.opened === 0 || log.closed === 0 || !recovered || log.fallbacks === 0) {
      console.log('expected the breaker to open during the outage and close after it');
      return 1;
    }
    return 0;
  } finally {
    policies.dispose(); // frees every pipeline it handed out
    server.close();
    server.closeAllConnections(); // fetch keeps connections alive
  }
}

process.exitCode = await main(process.argv);
