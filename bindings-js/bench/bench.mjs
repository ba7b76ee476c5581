// Per-call overhead of tripwire against cockatiel and opossum, side by side in one Node
// process: each scenario awaits an immediately-resolving async function N times in a row;
// overhead = time per protected call − time per bare `await fn()`. Scenarios run interleaved
// for several rounds and the median round counts. The figure is the process's CPU time
// (user + system, all threads: GC included) per call, which other work on a shared machine
// does not inflate; wall-clock figures are printed beside it. Prints figures; asserts nothing.
//
//   node bench/bench.mjs [--calls N] [--rounds R] [--json] [--baseline DIR [--label NAME]]
//
// --baseline DIR: also time another build of this package (a copy of an earlier `dist/`, e.g.
// `cp -r dist /tmp/before`), side by side in the same process: before/after figures in one run.
// Its rows are named NAME ("baseline" by default; `bench-js.sh --browser` times the browser
// module this way, under the name "browser module").
import { CircuitBreaker, Pipeline } from 'tripwire';
import * as cockatiel from 'cockatiel';
import Opossum from 'opossum';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const CALLS = arg('--calls', 200_000);
const ROUNDS = arg('--rounds', 7);
const baselineAt = process.argv.indexOf('--baseline');
const baseline = baselineAt >= 0 ? await import(new URL(`file://${process.argv[baselineAt + 1]}/node/index.mjs`).href) : null;
const labelAt = process.argv.indexOf('--label');
const label = labelAt >= 0 ? process.argv[labelAt + 1] : 'baseline';
const note = label === 'baseline' ? '(before)' : `(${label})`;

const fn = async () => 1;

const twBreaker = new CircuitBreaker({});
const twFull = new Pipeline({ circuitBreaker: {}, retry: {}, timeout: { perAttempt: '5s' } });
const ckBreaker = cockatiel.circuitBreaker(cockatiel.handleAll, {
  halfOpenAfter: 30_000,
  breaker: new cockatiel.ConsecutiveBreaker(5),
});
const ckFull = cockatiel.wrap(
  cockatiel.retry(cockatiel.handleAll, { maxAttempts: 3 }),
  cockatiel.circuitBreaker(cockatiel.handleAll, { halfOpenAfter: 30_000, breaker: new cockatiel.ConsecutiveBreaker(5) }),
  cockatiel.timeout(5_000, cockatiel.TimeoutStrategy.Cooperative),
);
const opossum = new Opossum(fn, {}); // the defaults: a 10 s timeout, 50% error threshold

const scenarios = {
  'bare await fn()': () => fn(),
  'tripwire CircuitBreaker': () => twBreaker.execute(fn),
  'cockatiel circuitBreaker': () => ckBreaker.execute(fn),
  'tripwire Pipeline breaker+retry+timeout': () => twFull.execute(fn),
  'cockatiel wrap(retry, breaker, timeout)': () => ckFull.execute(fn),
  'opossum breaker (defaults)': () => opossum.fire(),
};
const baselineBreaker = baseline && new baseline.CircuitBreaker({});
const baselineFull = baseline && new baseline.Pipeline({ circuitBreaker: {}, retry: {}, timeout: { perAttempt: '5s' } });
if (baseline) {
  scenarios[`${label} CircuitBreaker`] = () => baselineBreaker.execute(fn);
  scenarios[`${label} Pipeline breaker+retry+timeout`] = () => baselineFull.execute(fn);
}

async function time(run) {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) await run();
  const wall = Number(process.hrtime.bigint() - t0) / CALLS;
  const cpu = process.cpuUsage(cpu0);
  return { cpu: ((cpu.user + cpu.system) * 1000) / CALLS, wall };
}

// Warm up every path (JIT, inline caches) before measuring.
for (const run of Object.values(scenarios)) await time(run);

const samples = Object.fromEntries(Object.keys(scenarios).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, run] of Object.entries(scenarios)) samples[name].push(await time(run));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const perCall = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v.map((s) => s.cpu))]));
const perCallWall = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v.map((s) => s.wall))]));
const bare = perCall['bare await fn()'];
const bareWall = perCallWall['bare await fn()'];
const overhead = Object.fromEntries(Object.entries(perCall).map(([k, v]) => [k, Math.max(0, v - bare)]));
const overheadWall = Object.fromEntries(Object.entries(perCallWall).map(([k, v]) => [k, Math.max(0, v - bareWall)]));

const rows = Object.keys(scenarios).map((k) => [
  k,
  perCall[k].toFixed(0),
  k === 'bare await fn()' ? '-' : overhead[k].toFixed(0),
  k === 'bare await fn()' ? '-' : overheadWall[k].toFixed(0),
]);
const ratio = (a, b) => (overhead[b] > 0 ? (overhead[a] / overhead[b]).toFixed(3) : 'n/a');
const ratios = [
  ['tripwire breaker / cockatiel breaker', ratio('tripwire CircuitBreaker', 'cockatiel circuitBreaker'), '<= 1'],
  ['tripwire breaker+retry+timeout / opossum breaker', ratio('tripwire Pipeline breaker+retry+timeout', 'opossum breaker (defaults)'), '<= 0.333'],
  ['tripwire breaker+retry+timeout / cockatiel wrap', ratio('tripwire Pipeline breaker+retry+timeout', 'cockatiel wrap(retry, breaker, timeout)'), 'far below 1'],
];
if (baseline) {
  ratios.push(
    [`${label} breaker / cockatiel breaker`, ratio(`${label} CircuitBreaker`, 'cockatiel circuitBreaker'), note],
    [`${label} breaker+retry+timeout / opossum breaker`, ratio(`${label} Pipeline breaker+retry+timeout`, 'opossum breaker (defaults)'), note],
  );
}

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ node: process.version, calls: CALLS, rounds: ROUNDS, perCall, overhead, overheadWall, ratios }, null, 2));
} else {
  console.log(`Node ${process.version}, ${CALLS} sequential calls x ${ROUNDS} rounds (median); CPU ns per call`);
  console.log('| scenario | CPU ns/call | overhead (CPU ns) | overhead (wall ns) |');
  console.log('|---|---:|---:|---:|');
  for (const [k, t, o, w] of rows) console.log(`| ${k} | ${t} | ${o} | ${w} |`);
  console.log('');
  console.log('| ratio of overheads | measured | goal (DESIGN.md §6) |');
  console.log('|---|---:|---|');
  for (const [k, v, g] of ratios) console.log(`| ${k} | ${v} | ${g} |`);
}
twBreaker.dispose();
twFull.dispose();
baselineBreaker?.dispose();
baselineFull?.dispose();
opossum.shutdown();
