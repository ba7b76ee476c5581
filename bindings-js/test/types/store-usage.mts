// Type-checked (tsc --noEmit) as a user's TypeScript would use the shared rate limit; not run.
import { Pipeline, type PolicyEvent } from 'tripwire';
import { SharedLimiter, scripts } from 'tripwire/raw';
import { RedisStore, type StoreReply, type StoreRequest } from 'tripwire/redis';

// The shapes of an ioredis and a node-redis client (their own types need @types/node).
declare const ioredis: { evalsha(...args: (string | number)[]): Promise<unknown>; eval(...args: (string | number)[]): Promise<unknown>; call(...args: string[]): Promise<unknown> };
declare const nodeRedis: { sendCommand(args: string[]): Promise<unknown>; evalSha(sha: string, options?: object): Promise<unknown> };

const config = { rateLimit: { algorithm: 'gcra', rate: '200/s', burst: 20 }, store: { key: 'partner-api', timeout: '25ms' } };
const a = new Pipeline(config, { store: ioredis });
const b = new Pipeline(config, { store: new RedisStore(nodeRedis) });
const c = new Pipeline(config, { store: { run: async (r: StoreRequest): Promise<StoreReply> => (r.resendSafe ? 'timeout' : { failed: r.sha1 }) } });
a.on('storeStateChanged', (e) => {
  const to: string = e.to;
  void to;
});
a.on('*', (e: PolicyEvent) => void e.at);
const sent: number | undefined = a.store instanceof RedisStore ? a.store.sent : undefined;
const state: string | undefined = b.stats().store?.storeState;
const lastError: string | null = a.storeLastError;
const share = a.stats().share;
const fleet: string | undefined = share?.fleetState;
const votes: number | undefined = share?.votes;
void [sent, state, c, RedisStore.accepts(ioredis), lastError, fleet, votes];

const l = new SharedLimiter(config, { seed: 7 });
const r = l.check('', performance.now());
if (typeof r === 'number') {
  const request = l.request(r);
  if (request !== undefined) {
    const reply: StoreReply = await new RedisStore(ioredis).run(request);
    const d = l.reply(r, reply, performance.now());
    const source: 'store' | 'fallback' | 'cache' = d.source;
    void source;
  }
} else {
  const retryAfter: number = r.retryAfter;
  void retryAfter;
}
const names: string[] = scripts().map((s) => s.name);
void [names, l.metrics().requests, l.storeState(), l.lastError];
