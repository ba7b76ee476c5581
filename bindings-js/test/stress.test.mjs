// Stress: a million policy objects through the public API, and memory stays flat.
//
// The mix is CircuitBreaker, RateLimiter, Bulkhead and Pipeline (breaker + retry + timeout +
// bulkhead, with a listener) in turn, so each class is made N/4 times; each object crosses into
// wasm synchronously once (state, check, stats) and runs one call through `execute`. Objects
// come in batches of BATCH; after each batch the heap is collected (global.gc()).
//
//   dispose  each object is disposed once its call returned.
//   drop     each object is forgotten WITHOUT dispose(): after each batch, global.gc() and a
//            macrotask (so FinalizationRegistry callbacks run), repeated until the batch's wasm
//            objects are freed; so only the FinalizationRegistry frees the wasm side, and the
//            wasm objects alive never exceed one batch.
//
// In both, RSS, the JS heap in use and the wasm linear memory are measured after a warm-up of
// N/10 objects (10^5 at the default N; N must be a multiple of 10^5) and at the end, each after a collection: the wasm memory
// must not grow at all, RSS by less than RSS_BOUND, the heap by less than HEAP_BOUND, and no
// wasm object may be left (raw.liveObjects()).
//
// Each mode runs in its own `node --expose-gc` process (this file, re-run with
// TRIPWIRE_STRESS_MODE set), so what is measured is the workload, not the test runner; the two
// run side by side (a 2-core machine gives each a core). Each process's young generation is fixed at V8's default maximum (16 MB semi-spaces) from the
// start: otherwise V8 grows it mid-run, which moves RSS by up to ~20 MB without any leak.
// TRIPWIRE_STRESS_N sets the object count; CI uses the default, 10^6 (about 30 s wall for
// both modes on a 2-core machine). TRIPWIRE_STRESS_TRACE=1 prints the memory figures every
// 10^5 objects to stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MB = 1024 * 1024;
// A leak of 20 bytes per object would be 18 MB over the 9 * 10^5 objects after the warm-up.
const RSS_BOUND = 16 * MB;
const HEAP_BOUND = 8 * MB;
const N = Number(process.env.TRIPWIRE_STRESS_N ?? 1_000_000);
if (!Number.isInteger(N) || N <= 0 || N % 100_000 !== 0) {
  throw new Error(`TRIPWIRE_STRESS_N must be a positive multiple of 100000, got ${process.env.TRIPWIRE_STRESS_N}`);
}
const WARMUP = N / 10;
const BATCH = 10_000;
const V8_FLAGS = ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'];

async function workload(mode) {
  const { Pipeline, CircuitBreaker, RateLimiter, Bulkhead } = await import('tripwire');
  const { raw } = await import('tripwire/raw');
  // The instance's exports: initSync returns them when the module is already instantiated.
  const memory = raw.initSync().memory;
  const gc = globalThis.gc;
  if (typeof gc !== 'function') throw new Error('run with --expose-gc');
  const macrotask = () => new Promise((r) => setTimeout(r, 0));
  const base = raw.liveObjects();
  const made = [0, 0, 0, 0];
  let maxLive = 0;
  let rounds = 0; // the most collections any batch needed before all of it was finalized
  let workMs = 0; // time in creating, using and disposing (not in collecting)

  // Collect until every dropped object is finalized (in dispose mode: one collection, so the
  // heap is measured in the same state in both modes).
  const collect = async () => {
    for (let i = 1; i <= 50; i++) {
      gc();
      await macrotask();
      rounds = Math.max(rounds, i);
      if (raw.liveObjects() <= base) return;
    }
  };

  // Each maker builds an object and crosses into wasm with it synchronously; then one call
  // runs through it (`work` returns 42).
  const noop = () => {};
  const makers = [
    () => {
      const b = new CircuitBreaker({ trip: { consecutiveFailures: 5 } });
      if (b.state !== 'closed') throw new Error(`state ${b.state}`);
      return b;
    },
    () => {
      const l = new RateLimiter({ rate: '1000/s', burst: 10 });
      if (!l.check().allowed) throw new Error('first check refused');
      return l;
    },
    () => {
      const h = new Bulkhead({ maxConcurrent: 4, maxQueue: 8 });
      if (h.stats().inFlight !== 0) throw new Error('bulkhead busy');
      return h;
    },
    () => {
      const p = new Pipeline({ circuitBreaker: {}, retry: { maxRetries: 2 }, timeout: { perAttempt: '1s' }, bulkhead: { maxConcurrent: 2 } });
      p.on('stateChanged', noop); // turns the wasm side's event queue on
      if (p.state !== 'closed') throw new Error(`state ${p.state}`);
      return p;
    },
  ];
  const work = () => 42;

  // One batch's objects, each with its call started. A plain function, so no object of the
  // batch lingers in a suspended async frame's registers (that would keep it alive).
  const start = (from, to) => {
    const objects = [];
    const calls = [];
    for (let i = from; i < to; i++) {
      const k = i & 3;
      const x = makers[k]();
      made[k]++;
      objects.push(x);
      calls.push(x.execute(work));
    }
    return { objects, calls };
  };

  const run = async (from, to) => {
    for (let i = from; i < to; ) {
      const t0 = performance.now();
      const end = Math.min(to, i + BATCH);
      let { objects, calls } = start(i, end);
      i = end;
      for (const v of await Promise.all(calls)) if (v !== 42) throw new Error(`a call returned ${v}`);
      maxLive = Math.max(maxLive, raw.liveObjects() - base);
      if (mode === 'dispose') for (const x of objects) x.dispose();
      objects = null; // drop mode: forgotten, never disposed
      calls = null;
      workMs += performance.now() - t0;
      await collect();
      if (process.env.TRIPWIRE_STRESS_TRACE && i % 100_000 === 0) {
        const m = process.memoryUsage();
        const f = (b) => (b / MB).toFixed(1);
        process.stderr.write(`${i}: rss ${f(m.rss)} heapTotal ${f(m.heapTotal)} heapUsed ${f(m.heapUsed)} wasm ${f(memory.buffer.byteLength)} MB\n`);
      }
    }
  };
  // Finalization callbacks run some time after the collection that found the objects dead.
  const settle = async () => {
    for (let i = 0; i < 50 && raw.liveObjects() > base; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    gc();
    await macrotask();
  };
  const sample = () => ({ rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed, wasm: memory.buffer.byteLength, live: raw.liveObjects() - base });

  await run(0, WARMUP);
  await settle();
  const warm = sample();
  workMs = 0;
  const t0 = performance.now();
  await run(WARMUP, N);
  await settle();
  const ms = performance.now() - t0;
  const end = sample();
  const measured = N - WARMUP;
  return { mode, n: N, warmup: WARMUP, batch: BATCH, made, ms, workMs, perSecond: (measured / workMs) * 1000, maxLive, rounds, warm, end };
}

if (process.env.TRIPWIRE_STRESS_MODE) {
  const result = await workload(process.env.TRIPWIRE_STRESS_MODE);
  process.stdout.write(JSON.stringify(result));
} else {
  const self = fileURLToPath(import.meta.url);
  // Both modes start at once, each in its own process (one per core on a 2-core machine).
  const runMode = (mode) =>
    new Promise((resolve, reject) => {
      const env = { ...process.env, TRIPWIRE_STRESS_MODE: mode };
      execFile(process.execPath, [...V8_FLAGS, self], { encoding: 'utf8', env, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`stress ${mode} failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      });
    });
  const results = { dispose: runMode('dispose'), drop: runMode('drop') };
  // Neither may reject unobserved while the other test runs.
  for (const r of Object.values(results)) r.catch(() => {});
  const report = (t, r) => {
    const mb = (b) => `${(b / MB).toFixed(1)} MB`;
    const line =
      `stress ${r.mode}: ${r.n} objects (${r.made.join('/')} CircuitBreaker/RateLimiter/Bulkhead/Pipeline, one call each), ` +
      `${r.n - r.warmup} after the warm-up in ${(r.ms / 1000).toFixed(1)} s wall (${(r.workMs / 1000).toFixed(1)} s outside gc: ` +
      `${Math.round(r.perSecond)} objects/s); RSS ${mb(r.warm.rss)} -> ${mb(r.end.rss)}, heap used ${mb(r.warm.heapUsed)} -> ` +
      `${mb(r.end.heapUsed)}, wasm memory ${r.warm.wasm} B -> ${r.end.wasm} B; live wasm objects at most ${r.maxLive}, ` +
      `${r.end.live} at the end; collections per batch at most ${r.rounds}`;
    t.diagnostic(line);
  };
  const check = (r) => {
    assert.deepEqual(r.made, [N / 4, N / 4, N / 4, N / 4]);
    assert.equal(r.end.live, 0, `every wasm object freed (${r.end.live} left)`);
    assert.equal(r.end.wasm, r.warm.wasm, `wasm memory grew from ${r.warm.wasm} to ${r.end.wasm} bytes`);
    const rss = r.end.rss - r.warm.rss;
    assert.ok(rss < RSS_BOUND, `RSS grew by ${(rss / MB).toFixed(1)} MB (bound ${RSS_BOUND / MB} MB)`);
    const heap = r.end.heapUsed - r.warm.heapUsed;
    assert.ok(heap < HEAP_BOUND, `heap in use grew by ${(heap / MB).toFixed(1)} MB (bound ${HEAP_BOUND / MB} MB)`);
    // Every batch is alive at once while its calls run, and nothing before it.
    assert.equal(r.maxLive, BATCH, `live wasm objects peaked at ${r.maxLive}`);
  };

  test(`stress: ${N} policy objects created, used and disposed; RSS and wasm memory stay flat`, async (t) => {
    const r = await results.dispose;
    report(t, r);
    check(r);
  });

  test(`stress: ${N} policy objects dropped without dispose(); the FinalizationRegistry frees the wasm side`, async (t) => {
    const r = await results.drop;
    report(t, r);
    check(r);
  });
}
