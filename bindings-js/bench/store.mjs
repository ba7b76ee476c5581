// Round trip per shared decision through Redis, one caller (a figure, not a test):
//   TRIPWIRE_REDIS_URL=redis://127.0.0.1:6379/ node bindings-js/bench/store.mjs [decisions]
// Prints the median and p99 of: a bare ioredis EVALSHA of the same script, the raw
// SharedLimiter + RedisStore, and Pipeline.execute with a store.
import Redis from 'ioredis';
import { Pipeline } from 'tripwire';
import { SharedLimiter } from 'tripwire/raw';
import { RedisStore } from 'tripwire/redis';

const n = Number(process.argv[2] ?? 10_000);
const url = process.env.TRIPWIRE_REDIS_URL ?? 'redis://127.0.0.1:6379/';
const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
await client.connect();
const config = {
  rateLimit: { algorithm: 'gcra', rate: '1000000/s', burst: 1000 },
  store: { key: 'bench', timeout: '250ms' },
};

async function measure(name, once) {
  for (let i = 0; i < 1000; i++) await once(); // warm-up (and the script load)
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await once();
    times[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  times.sort();
  console.log(`${name.padEnd(34)} median ${times[n >> 1].toFixed(1)} µs   p99 ${times[Math.floor(n * 0.99)].toFixed(1)} µs`);
}

const store = new RedisStore(client);
const limiter = new SharedLimiter(config, { seed: 1 });
let request;
await measure('SharedLimiter + RedisStore', async () => {
  const r = limiter.check('', performance.now(), 1);
  if (typeof r !== 'number') return;
  request = limiter.request(r);
  limiter.reply(r, await store.run(request), performance.now());
});
// The same script and arguments, without tripwire: the floor.
await measure('bare ioredis EVALSHA', () =>
  client.evalsha(request.sha1, request.keys.length, ...request.keys, ...request.args));
const pipeline = new Pipeline(config, { store: client });
await measure('Pipeline.execute with a store', () => pipeline.execute(async () => 1));
pipeline.dispose();
limiter.dispose();
client.disconnect();
