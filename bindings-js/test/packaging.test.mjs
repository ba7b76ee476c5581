// The package as users get it: `import` and `require` in Node, `tripwire/testing`, the types,
// and a tarball from `npm pack` installed into a fresh project.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esm from 'tripwire';
import * as esmTesting from 'tripwire/testing';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('..', import.meta.url));

test('import and require give the same classes (one wasm instance per process)', () => {
  const cjs = require('tripwire');
  assert.equal(cjs.Pipeline, esm.Pipeline);
  assert.equal(cjs.CircuitOpenError, esm.CircuitOpenError);
  assert.equal(require('tripwire/testing').FakeClock, esmTesting.FakeClock);
  assert.equal(require('tripwire/raw').raw.liveObjects, require('tripwire/raw').raw.liveObjects);
  const exported = Object.keys(esm).sort();
  assert.deepEqual(Object.keys(cjs).sort(), exported);
  for (const name of [
    'Pipeline', 'CircuitBreaker', 'RateLimiter', 'KeyedRateLimiter', 'Bulkhead', 'HealthChecker', 'loadPolicies',
    'TripwireError', 'CircuitOpenError', 'BulkheadFullError', 'QueueTimeoutError', 'RateLimitedError', 'TimeoutError',
    'RetriesExhaustedError', 'BudgetExhaustedError', 'DeadlineExceededError', 'ConfigError', 'defaultRetryable', 'systemClock',
  ]) {
    assert.ok(exported.includes(name), `exports ${name}`);
  }
});

test('the TypeScript declarations type-check a user program (ESM and CJS)', () => {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'test/types/tsconfig.json')], { stdio: 'pipe' });
});

test('npm pack holds the built package and nothing else; the tarball installs and runs', () => {
  const work = mkdtempSync(join(tmpdir(), 'tripwire-pack-'));
  try {
    const [pack] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }));
    const files = pack.files.map((f) => f.path).sort();
    for (const f of ['package.json', 'README.md', 'dist/web/tripwire_js_bg.wasm', 'dist/cjs/tripwire_js_bg.wasm', 'dist/web/index.js', 'dist/web/tripwire_js.js', 'dist/cjs/index.cjs', 'dist/cjs/lib.cjs', 'dist/node/index.mjs', 'types/index.d.ts', 'types/testing.d.ts']) {
      assert.ok(files.includes(f), `the tarball holds ${f}`);
    }
    assert.ok(!files.some((f) => /^(src|test|js|tools|bench|node_modules)\/|Cargo/.test(f)), `no sources or tests: ${files.join(' ')}`);
    assert.deepEqual(files.filter((f) => f.endsWith('.wasm')), ['dist/cjs/tripwire_js_bg.wasm', 'dist/web/tripwire_js_bg.wasm'], "Node's module and the browser's");

    const app = join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(work, pack.filename)], { cwd: app, stdio: 'pipe' });
    const script = `
      const { Pipeline, CircuitOpenError } = TRIPWIRE;
      const p = new Pipeline({ circuitBreaker: { trip: { consecutiveFailures: 1 } } });
      p.execute(async () => { throw new Error('x'); })
        .catch(() => p.execute(async () => 1))
        .catch((e) => console.log(e instanceof CircuitOpenError, e.code, p.state));`;
    writeFileSync(join(app, 'esm.mjs'), `import * as TRIPWIRE from 'tripwire';\n${script}`);
    writeFileSync(join(app, 'cjs.cjs'), `const TRIPWIRE = require('tripwire');\n${script}`);
    for (const file of ['esm.mjs', 'cjs.cjs']) {
      assert.equal(execFileSync(process.execPath, [file], { cwd: app, encoding: 'utf8' }).trim(), 'true circuitOpen open', file);
    }
    const installed = JSON.parse(readFileSync(join(app, 'node_modules/tripwire/package.json'), 'utf8'));
    assert.equal(installed.name, 'tripwire');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("Node's module has the shared store and the browser's, built for size, leaves it out", () => {
  const exportsOf = (dir) =>
    WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(join(root, 'dist', dir, 'tripwire_js_bg.wasm')))).map((e) => e.name);
  const node = exportsOf('cjs');
  const web = exportsOf('web');
  for (const name of ['storeScripts', 'rawsharedlimiter_new', 'rawpipeline_reportStore']) {
    assert.ok(node.includes(name), `Node's module exports ${name}`);
    assert.ok(!web.includes(name), `the browser's does not export ${name}`);
  }
  // Everything else is the same API.
  assert.deepEqual(web.filter((n) => !/store|sharedlimiter/i.test(n)).sort(), node.filter((n) => !/store|sharedlimiter/i.test(n)).sort());
});

// The browser module's size, wasm + glue gzipped (what `build-js.sh` prints): a ceiling a few
// percent above the measured 102.4 KB, so a change that links a large piece of `core` or
// `std` again (a float formatter, `{:?}`'s Unicode tables, a serializer per type: each 3 to
// 8 KB) fails here rather than growing the download unnoticed. DESIGN.md §6 asked for 40 KB;
// why this build cannot reach it is in README.md ("Bundle size").
const BROWSER_BUDGET_GZIP = 107_000;

test('the browser module (wasm + glue, gzipped) stays within its size budget', () => {
  const gz = (file) => gzipSync(readFileSync(join(root, 'dist/web', file)), { level: 9 }).length;
  const size = gz('tripwire_js_bg.wasm') + gz('tripwire_js.js');
  assert.ok(size <= BROWSER_BUDGET_GZIP, `browser module ${size} B gzip > budget ${BROWSER_BUDGET_GZIP} B`);
});
