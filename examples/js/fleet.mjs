// One rate limit for a whole fleet: two instances (here two pipelines; in real life two
// processes or machines) share "10 calls/s, burst 20" through Redis, whatever their number.
// Run: TRIPWIRE_REDIS_URL=redis://127.0.0.1:6379/ node fleet.mjs
import Redis from 'ioredis';
import { Pipeline, RateLimitedError } from 'tripwire';

const config = {
  rateLimit: { algorithm: 'gcra', rate: '10/s', burst: 20 },
  // Every instance with this key shares the limit. When Redis does not answer within 25 ms,
  // each instance decides alone at rate/2 and burst/2 until Redis is back.
  store: { key: 'partner-api', timeout: '25ms', onUnavailable: 'local', expectedInstances: 2 },
};

// Your own client (tripwire opens no connection), connected before use, with no offline
// queue and no retries: a request is sent once, and a slow Redis never holds a call longer
// than the store timeout.
async function connect() {
  const url = process.env.TRIPWIRE_REDIS_URL ?? 'redis://127.0.0.1:6379/';
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  await client.connect();
  return client;
}

const clients = [await connect(), await connect()];
const instances = clients.map((client) => new Pipeline(config, { store: client }));

const callPartner = async () => 'ok'; // your HTTP call
const started = performance.now();
const admitted = await Promise.all(
  instances.map(async (pipeline) => {
    let n = 0;
    for (let i = 0; i < 30; i++) {
      try {
        await pipeline.execute(callPartner);
        n++;
      } catch (e) {
        if (!(e instanceof RateLimitedError)) throw e;
      }
    }
    return n;
  }),
);
const seconds = (performance.now() - started) / 1000;
console.log(`instance A admitted ${admitted[0]}, instance B ${admitted[1]}: ${admitted[0] + admitted[1]} of 60 calls`);

// The story this example tells (a tested file): one burst of 20 for both, decided by Redis.
const byStore = instances.reduce((n, p) => n + p.stats().store.storeAllowed, 0);
const total = admitted[0] + admitted[1];
if (total < 20 || total > 20 + Math.ceil(10 * seconds) || byStore !== total || admitted.includes(0)) {
  console.error(`expected one shared burst of 20 decided by Redis; got ${total} (${byStore} by Redis)`);
  process.exitCode = 1;
}
for (const p of instances) p.dispose();
for (const c of clients) c.disconnect();
