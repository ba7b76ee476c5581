// The conformance vectors (tests/vectors/*.json), every one, through the wasm binding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from 'tripwire/raw';
import { runVector } from './vector-runner.js';

const dir = fileURLToPath(new URL('../../tests/vectors/', import.meta.url));
// `sharedRateLimit` and `fleet` vectors need a store (a Redis server running the real scripts):
// store-vectors.test.mjs replays them through Redis.
const STORE_KINDS = new Set(['sharedRateLimit', 'fleet']);
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();
const files = all.filter((f) => !STORE_KINDS.has(JSON.parse(readFileSync(dir + f, 'utf8')).kind));

test('only the store kinds are left to store-vectors.test.mjs', () => {
  const skipped = all.filter((f) => !files.includes(f)).map((f) => JSON.parse(readFileSync(dir + f, 'utf8')).kind);
  assert.deepEqual(new Set(skipped), STORE_KINDS, 'both store kinds have vectors, and nothing else is skipped');
});

test('the vectors directory has vectors of every kind', () => {
  const kinds = new Set(files.map((f) => JSON.parse(readFileSync(dir + f, 'utf8')).kind));
  for (const k of ['circuitBreaker', 'rateLimit', 'keyedRateLimit', 'bulkhead', 'pipeline', 'policyFile', 'health', 'retry', 'config']) {
    assert.ok(kinds.has(k), `no ${k} vector`);
  }
  assert.ok(files.length >= 100, `only ${files.length} vectors`);
});

for (const f of files) {
  test(`vector ${f}`, () => {
    const vector = JSON.parse(readFileSync(dir + f, 'utf8'));
    runVector(T, vector);
  });
}

test('the runner fails on a difference (a vector with a wrong expectation)', () => {
  const vector = JSON.parse(readFileSync(dir + 'breaker-consecutive-trips.json', 'utf8'));
  const state = vector.steps.find((s) => s.op === 'state');
  state.expect = state.expect === 'open' ? 'closed' : 'open';
  assert.throws(() => runVector(T, vector), /expected/);
});
