// One instance of a service calling a partner API through tripwire, in Node: the twin of
// service.py.
//
// Run by examples/fleet/demo.py next to the same service in other languages: every instance
// loads examples/fleet/fleet.json, so they share one rate limit (100/s, burst 10) and one
// circuit breaker through the Redis at $TRIPWIRE_REDIS_URL. The partner is a local stand-in
// that fails every call between --down-from and --down-until (Unix seconds).
//
// Prints one line per second and, at the end, a JSON summary on the last line.
//   node service.mjs --seconds 6 --down-from UNIX_S --down-until UNIX_S
// (tripwire and ioredis come from node_modules: `make demo-fleet` links them there.)
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import Redis from 'ioredis';
import { loadPolicies, RateLimitedError, CircuitOpenError } from 'tripwire';

const { values: a } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    'down-from': { type: 'string', default: '0' },
    'down-until': { type: 'string', default: '0' },
  },
});
const seconds = Number(a.seconds);
const downFrom = Number(a['down-from']);
const downUntil = Number(a['down-until']);

// Your own client (tripwire opens no connection), connected before use, with no offline queue
// and no retries: a request is sent once, and a slow Redis never holds a call longer than the
// store timeout (25 ms in fleet.json).
const client = new Redis(process.env.TRIPWIRE_REDIS_URL ?? 'redis://127.0.0.1:6379/', {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 1000,
  lazyConnect: true,
});
await client.connect();
const policies = loadPolicies(readFileSync(new URL('fleet.json', import.meta.url), 'utf8'), { store: client });
const api = policies.get('partner');

async function partner() {
  const now = Date.now() / 1000;
  if (downFrom <= now && now < downUntil) throw new Error('partner unavailable');
  return 'ok';
}

const KEYS = ['admitted', 'rateLimited', 'circuitOpen', 'failed'];
const zero = () => Object.fromEntries(KEYS.map((k) => [k, 0]));
const counts = zero();
let second = zero();
const pad = (x, n) => String(x).padStart(n);
const start = performance.now();
let nextReport = start + 1000;
while (performance.now() - start < seconds * 1000) {
  let key;
  try {
    await api.execute(partner);
    key = 'admitted';
  } catch (e) {
    if (e instanceof RateLimitedError) key = 'rateLimited';
    else if (e instanceof CircuitOpenError) key = 'circuitOpen';
    else key = 'failed'; // the partner's own failure, passed through
  }
  counts[key]++;
  second[key]++;
  if (performance.now() >= nextReport) {
    console.log(
      `node    ${pad(Math.round((nextReport - start) / 1000), 4)}s  admitted ${pad(second.admitted, 4)}  ` +
        `rateLimited ${pad(second.rateLimited, 5)}  circuitOpen ${pad(second.circuitOpen, 4)}  ` +
        `failed ${pad(second.failed, 3)}  breaker ${api.state ?? '-'}`,
    );
    second = zero();
    nextReport += 1000;
  }
  await sleep(2);
}
const stats = api.stats();
console.log(JSON.stringify({ lang: 'node', ...counts, share: stats.share ?? null, store: stats.store ?? null }));
policies.dispose();
client.disconnect();
