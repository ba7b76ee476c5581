// The README's quick start is examples/quickstart.mjs, verbatim; this runs it against a local
// flaky server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { getPrice, prices } from '../examples/quickstart.mjs';

test('the README quick start is examples/quickstart.mjs, verbatim', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const example = readFileSync(new URL('../examples/quickstart.mjs', import.meta.url), 'utf8');
  assert.ok(readme.includes('```js\n' + example + '```\n'), 'README.md embeds the example unchanged');
});

test('the quick start retries a 503, falls back on a 404, and serves the last known price when down', { timeout: 20_000 }, async () => {
  const seen = [];
  let down = false;
  const server = createServer((req, res) => {
    seen.push(req.url);
    if (req.url === '/prices/1' && (down || seen.filter((u) => u === '/prices/1').length === 1)) {
      res.writeHead(503, { 'retry-after': '0' }).end('busy');
    } else if (req.url === '/prices/1') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 1, price: 42 }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    assert.deepEqual(await getPrice(base, 1), { id: 1, price: 42 });
    assert.deepEqual(seen, ['/prices/1', '/prices/1'], 'the 503 was retried');
    assert.deepEqual(await getPrice(base, 2), { id: 2, price: null });
    assert.equal(seen.filter((u) => u === '/prices/2').length, 1, 'a 404 is not retried');
    down = true;
    assert.deepEqual(await getPrice(base, 1), { id: 1, price: 42 }, 'the last known price');
    assert.equal(seen.filter((u) => u === '/prices/1').length, 6, 'four attempts while down');
    const stats = prices.stats();
    assert.equal(stats.calls, 3);
    assert.equal(stats.failed.retriesExhausted, 1);
    assert.equal(stats.state, 'closed', 'a 404 is ignored by the breaker, and one failed call does not trip it');
  } finally {
    server.close();
    prices.dispose();
  }
});
