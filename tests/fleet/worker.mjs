// The Node fleet worker (tests/fleet/README.md): C concurrent async callers on one shared
// limit, each with its own ioredis client (one connection, so one EVAL per connection after a
// restart) and tripwire/redis's RedisStore; one SharedLimiter (tripwire/raw) per process.
//
//   node tests/fleet/worker.mjs --url redis://127.0.0.1:PORT/ --config '<pipeline JSON>' \
//        --seconds S --callers C --out FILE [--seed N]
//
// tripwire and ioredis resolve as from bindings-js (`make js` builds it; ioredis is its pinned
// devDependency).
import { createRequire } from 'node:module';
import { createWriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(new URL('../../bindings-js/package.json', import.meta.url));
const Redis = require('ioredis');
const { SharedLimiter } = require('tripwire/raw');
const { RedisStore } = require('tripwire/redis');

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    if (!name.startsWith('--') || i + 1 >= argv.length) throw new Error(`usage: worker.mjs --url U --config JSON --seconds S --callers C --out FILE [--seed N] (at ${name})`);
    args[name.slice(2)] = argv[i + 1];
  }
  for (const need of ['url', 'config', 'seconds', 'callers', 'out']) {
    if (args[need] === undefined) throw new Error(`worker.mjs: --${need} is required`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const seconds = Number(args.seconds);
const callers = Number(args.callers);
if (!(seconds > 0) || !Number.isInteger(callers) || callers < 1) throw new Error('worker.mjs: --seconds must be > 0 and --callers a whole number >= 1');
const { rateLimit, store, keyed } = JSON.parse(args.config);
const limiter = new SharedLimiter({ rateLimit, store, ...(keyed === undefined ? {} : { keyed }) }, args.seed === undefined ? {} : { seed: Number(args.seed) });

const out = createWriteStream(args.out, { flags: 'a' });
let lines = [];
function record(line) {
  lines.push(line);
  if (lines.length >= 1024) {
    out.write(lines.join(''));
    lines = [];
  }
}

const clients = [];
const stores = [];
for (let i = 0; i < callers; i++) {
  // What tripwire/redis requires: no offline queue, no retries (a request is written once).
  const client = new Redis(args.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  client.on('error', () => {}); // reconnects are ioredis's business; requests report "unavailable"
  clients.push(client);
  stores.push(new RedisStore(client));
}
await Promise.all(clients.map((c) => c.connect().catch(() => {})));

let decisions = 0;
let admitted = 0;
const end = performance.now() + seconds * 1000;

async function caller(store) {
  while (performance.now() < end) {
    const started = process.hrtime.bigint();
    let decision = limiter.check('', performance.now(), 1);
    let time = '0 0';
    if (typeof decision === 'number') {
      const id = decision;
      const reply = await store.run(limiter.request(id));
      decision = limiter.reply(id, reply, performance.now());
      if (decision.source === 'store' && Array.isArray(reply)) time = `${reply[1]} ${reply[2]}`;
    }
    const latency = process.hrtime.bigint() - started;
    decisions++;
    if (decision.allowed) admitted++;
    record(`${decision.source} ${decision.allowed ? 1 : 0} ${time} ${latency}\n`);
    if (!decision.allowed) await sleep(Math.min(decision.retryAfter, 50));
  }
}

await Promise.all(stores.map(caller));
out.end(lines.join(''));
await new Promise((resolve, reject) => out.on('finish', resolve).on('error', reject));
for (const c of clients) c.disconnect();
const sum = (field) => stores.reduce((n, s) => n + s[field], 0);
console.log(
  JSON.stringify({
    lang: 'js',
    decisions,
    admitted,
    sent: sum('sent'),
    evals: sum('evals'),
    timeouts: sum('timeouts'),
    unavailable: sum('unavailable'),
  }),
);
limiter.dispose();
