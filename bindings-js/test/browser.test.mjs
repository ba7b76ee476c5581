// The web build in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// every conformance vector (but those that need a store), a pipeline scenario, and the
// refusals of the store the browser module leaves out, run by test/browser/page.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const vectorsDir = fileURLToPath(new URL('../../tests/vectors/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

function serve() {
  // `sharedRateLimit` and `fleet` vectors need a store (a Redis server running the real
  // scripts): store-vectors.test.mjs replays them through Redis in Node.
  const storeKinds = new Set(['sharedRateLimit', 'fleet']);
  const vectorNames = readdirSync(vectorsDir)
    .filter((f) => f.endsWith('.json') && !storeKinds.has(JSON.parse(readFileSync(join(vectorsDir, f), 'utf8')).kind))
    .sort();
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let file = null;
    if (path === '/') file = join(root, 'test/browser/index.html');
    else if (path === '/vectors/index.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(vectorNames));
      return;
    } else if (path.startsWith('/vectors/')) file = join(vectorsDir, normalize(path.slice('/vectors/'.length)));
    else if (path.startsWith('/dist/web/') || path.startsWith('/test/')) file = join(root, normalize(path));
    if (file === null || !file.startsWith(root.slice(0, -'bindings-js/'.length)) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, count: vectorNames.length })));
}

test('the web build runs every vector and a pipeline scenario in headless Chromium', { timeout: 120_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (scripts/ci/test-js.sh installs it)`);
  const { server, count } = await serve();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    // A page error (a module that fails to load never sets __results) ends the wait at once.
    await Promise.race([
      page.waitForFunction(() => window.__results !== undefined, null, { timeout: 90_000 }),
      new Promise((_, reject) => page.on('pageerror', (e) => reject(new Error(`page error: ${e}`)))),
    ]);
    const results = await page.evaluate(() => window.__results);
    assert.equal(results.error, undefined, results.error);
    assert.deepEqual(errors, []);
    const { vectors, scenario, noStore } = results;
    // The browser module is built without the store (scripts/ci/build-js.sh).
    const notInBuild = /is not in this build of tripwire \(the npm package's browser module leaves the shared store out/;
    assert.match(noStore.store, /^ConfigError: store: /);
    assert.match(noStore.store, notInBuild);
    assert.match(noStore.share, /^ConfigError: circuitBreaker\.share: /);
    assert.match(noStore.share, notInBuild);
    assert.match(noStore.option, /^ERR_TRIPWIRE_NO_STORE: tripwire: options\.store: the browser build has no shared store/);
    assert.match(noStore.limiter, /^ERR_TRIPWIRE_NO_STORE: tripwire: SharedLimiter: /);
    assert.equal(noStore.storeNull, 'accepted', '"store": null means no store, as in Node');
    assert.equal(vectors.count, count);
    assert.deepEqual(vectors.failures, []);
    assert.match(scenario.userAgent, /Chrome/);
    assert.equal(scenario.first, 'flaky but fine');
    assert.equal(scenario.attempts, 3);
    assert.deepEqual(scenario.outcomes, ['retriesExhausted(3)', 'retriesExhausted(3)', 'circuitOpen(10s)']);
    assert.equal(scenario.fallback, 'default');
    assert.deepEqual(scenario.events, [
      'retryScheduled',
      'retryScheduled',
      'retryScheduled',
      'retryScheduled',
      'gaveUp',
      'retryScheduled',
      'retryScheduled',
      // The pipeline queues its own gaveUp before the breaker's transition it caused.
      'gaveUp',
      'closed->open',
      'rejected',
      'rejected',
    ]);
    assert.equal(scenario.calls, 5);
    assert.equal(scenario.state, 'open');
    assert.equal(scenario.timeoutIsError, true);
  } finally {
    await browser.close();
    server.close();
  }
});
