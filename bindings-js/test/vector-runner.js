// Replays one conformance vector (tests/vectors/*.json, format in tests/vectors/README.md)
// through the binding's low-level API (`tripwire/raw`), with the meaning of the Rust reference
// runner (core/tests/vectors/*.rs). Shared by Node (vectors.test.mjs) and the browser test,
// so it imports nothing: the caller passes the `tripwire/raw` module.

/** A difference between a vector and what the binding did. */
class Mismatch extends Error {}

const nullish = (x) => (x === undefined || (typeof x === 'number' && Number.isNaN(x)) ? null : x);
const nsOf = (x) => Math.round(x * 1e6);

/** Every field of `expected` must match `actual`; numbers match when equal in rounded ns. */
export function check(expected, actual, ctx) {
  actual = nullish(actual);
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
      throw new Mismatch(`${ctx}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    }
    for (const [k, v] of Object.entries(expected)) check(v, actual[k], `${ctx}.${k}`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      throw new Mismatch(`${ctx}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    }
    expected.forEach((v, i) => check(v, actual[i], `${ctx}[${i}]`));
    return;
  }
  if (typeof expected === 'number' && typeof actual === 'number') {
    if (nsOf(expected) !== nsOf(actual)) throw new Mismatch(`${ctx}: expected ${expected}, got ${actual}`);
    return;
  }
  if (expected !== actual) throw new Mismatch(`${ctx}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

const at = (step) => step.at ?? 0;
const ctxOf = (i, step) => `step ${i} (${step.op ?? '?'})`;
const opt = (x) => (typeof x === 'number' ? x : NaN);
const seedOf = (v) => {
  const seed = v.seed ?? 0;
  return [Math.floor(seed / 2 ** 32), seed >>> 0];
};

function label(step, field, ctx) {
  const l = step[field];
  if (typeof l !== 'string') throw new Mismatch(`${ctx}: step lacks ${JSON.stringify(field)}`);
  return l;
}

function firstIssue(e) {
  const issue = e.issues?.[0];
  if (issue === undefined) return String(e.message);
  return issue.path === '' ? issue.reason : `${issue.path}: ${issue.reason}`;
}

function drainEvents(T, source) {
  const events = [];
  for (let c = source.nextEvent(); c !== 0; c = source.nextEvent()) events.push(T.readEvent(c));
  return events;
}

function breaker(T, v) {
  let b = new T.raw.RawBreaker(v.config);
  b.setListening(true);
  const permits = new Map();
  v.steps.forEach((step, i) => {
    const ctx = ctxOf(i, step);
    const now = at(step);
    const permit = () => {
      const name = label(step, 'permit', ctx);
      const p = permits.get(name);
      if (p === undefined) throw new Mismatch(`${ctx}: no permit labelled ${name}`);
      return p;
    };
    let actual;
    switch (step.op) {
      case 'acquire': {
        const code = b.acquire(now);
        const o = T.out();
        if (code & 1) {
          if (typeof step.as === 'string') permits.set(step.as, [o[T.PERMIT], o[T.PERMIT + 1], o[T.PERMIT + 2], o[T.PERMIT + 3] === 1]);
          actual = { admitted: true, retryAfter: null };
        } else {
          actual = { admitted: false, retryAfter: nullish(o[T.RETRY_AFTER]) };
        }
        break;
      }
      case 'record': {
        const outcome = ['success', 'failure', 'ignored'].indexOf(step.outcome);
        if (outcome < 0) throw new Mismatch(`${ctx}: unknown outcome ${step.outcome}`);
        if (b.record(...permit(), outcome, now) & 4) throw new Mismatch(`${ctx}: record refused the outcome`);
        actual = null;
        break;
      }
      case 'release':
        b.release(...permit(), now);
        actual = null;
        break;
      case 'state':
        actual = T.STATES[b.state()];
        break;
      case 'forceOpen':
        b.forceOpen(now);
        actual = null;
        break;
      case 'disable':
        b.disable(now);
        actual = null;
        break;
      case 'reset':
        b.reset(now);
        actual = null;
        break;
      case 'pollTimeout':
        actual = nullish(b.pollTimeout());
        break;
      case 'snapshotRestore': {
        const text = JSON.stringify(b.snapshot());
        const fresh = new T.raw.RawBreaker(v.config);
        fresh.setListening(true);
        try {
          fresh.restore(JSON.parse(text), now);
        } catch (e) {
          throw new Mismatch(`${ctx}: restore of ${text} refused: ${e.message}`);
        }
        b.free();
        b = fresh;
        actual = null;
        break;
      }
      case 'metrics':
        actual = b.metrics();
        break;
      case 'events':
        check(step.expect, drainEvents(T, b), ctx);
        return;
      default:
        throw new Mismatch(`${ctx}: unknown circuitBreaker op ${step.op}`);
    }
    if ('expect' in step) check(step.expect, actual, ctx);
  });
  b.free();
}

function decision(T, code) {
  const o = T.out();
  switch (code & 3) {
    case 0:
      return { allowed: true, wait: 0, retryAfter: null };
    case 1:
      return { allowed: true, wait: o[T.TIME], retryAfter: null };
    case 2:
      return { allowed: false, wait: 0, retryAfter: nullish(o[T.RETRY_AFTER]) };
    default:
      throw new Mismatch(`unknown decision code ${code}`);
  }
}

function rateLimit(T, v) {
  if (typeof v.description !== 'string' || v.description === '') throw new Mismatch('a vector needs a description');
  const keyed = v.kind === 'keyedRateLimit';
  const l = keyed ? new T.raw.RawKeyedLimiter(v.config, ...seedOf(v)) : new T.raw.RawLimiter(v.config);
  l.setListening(true);
  v.steps.forEach((step, i) => {
    const ctx = ctxOf(i, step);
    const now = at(step);
    let actual;
    switch (step.op) {
      case 'check': {
        const cost = step.cost ?? 1;
        if (keyed && typeof step.key !== 'string') throw new Mismatch(`${ctx}: a keyed check needs a key`);
        actual = decision(T, keyed ? l.check(step.key, now, cost) : l.check(now, cost));
        break;
      }
      case 'events':
        check(step.expect, drainEvents(T, l), ctx);
        return;
      case 'keys':
        if (!keyed) throw new Mismatch(`${ctx}: keys on a plain limiter`);
        actual = l.keys();
        break;
      default:
        throw new Mismatch(`${ctx}: unknown op ${step.op} for ${v.kind}`);
    }
    if (step.expect !== undefined && step.expect !== null) check(step.expect, actual, ctx);
  });
  l.free();
}

function bulkhead(T, v) {
  const b = new T.raw.RawBulkhead(v.config);
  b.setListening(true);
  const tickets = new Map();
  const nameOf = (ticket) => [...tickets].find(([, t]) => t === ticket)?.[0] ?? `#${ticket}`;
  v.steps.forEach((step, i) => {
    const ctx = ctxOf(i, step);
    const now = at(step);
    let actual;
    switch (step.op) {
      case 'enter': {
        const code = b.enter(now, opt(step.deadline));
        const o = T.out();
        if (code === 0) actual = { result: 'admitted', until: null, reason: null };
        else if (code === 1) {
          if (typeof step.as === 'string') tickets.set(step.as, o[T.TICKET]);
          actual = { result: 'queued', until: nullish(o[T.TIME]), reason: null };
        } else if (code === 2) actual = { result: 'rejected', until: null, reason: T.KINDS[o[T.KIND]] };
        else throw new Mismatch(`${ctx}: unknown entry code ${code}`);
        break;
      }
      case 'release': {
        const woke = b.release(now);
        actual = { woke: woke === 0 ? null : nameOf(woke) };
        break;
      }
      case 'cancel': {
        const name = label(step, 'ticket', ctx);
        if (!tickets.has(name)) throw new Mismatch(`${ctx}: no ticket labelled ${name}`);
        actual = b.cancel(tickets.get(name), now, step.timedOut ?? false);
        break;
      }
      case 'stats': {
        const m = b.metrics();
        actual = {
          inFlight: m.inFlight,
          queued: m.queueDepth,
          queueDepth: m.queueDepth,
          queuedTotal: m.queued,
          admitted: m.admitted,
          woken: m.woken,
          rejectedFull: m.rejectedFull,
          queueTimeouts: m.queueTimeouts,
          cancelled: m.cancelled,
          unmatchedReleases: m.unmatchedReleases,
          maxConcurrent: m.maxConcurrent,
          maxQueue: m.maxQueue,
        };
        break;
      }
      case 'events':
        check(step.expect, drainEvents(T, b), ctx);
        return;
      default:
        throw new Mismatch(`${ctx}: unknown bulkhead op ${step.op}`);
    }
    if ('expect' in step) check(step.expect, actual, ctx);
  });
  b.free();
}

const STEP_NAMES = ['attempt', 'sleep', 'park', 'done', 'fail'];

function stepJson(T, code) {
  const o = T.out();
  switch (code & 7) {
    case 0:
      return { step: 'attempt', attempt: o[T.ATTEMPTS], deadline: nullish(o[T.TIME]) };
    case 1:
      return { step: 'sleep', until: o[T.TIME] };
    case 2:
      return { step: 'park', until: nullish(o[T.TIME]) };
    case 3:
      return { step: 'done', attempts: o[T.ATTEMPTS] };
    case 4:
      return {
        step: 'fail',
        kind: T.KINDS[o[T.KIND]],
        retryAfter: nullish(o[T.RETRY_AFTER]),
        attempts: o[T.ATTEMPTS],
        fallback: o[T.FALLBACK] === 1,
        cause: o[T.CAUSE] === 0 ? null : T.KINDS[o[T.CAUSE]],
      };
    default:
      return { step: STEP_NAMES[code & 7] ?? 'unknown' };
  }
}

function pipeline(T, v) {
  const seed = seedOf(v);
  const file = v.kind === 'policyFile' ? new T.raw.RawPolicyFile(v.config) : null;
  const pipelines = new Map();
  if (file === null) {
    const p = new T.raw.RawPipeline(v.config, ...seed, '');
    p.setListening(true);
    pipelines.set('', p);
  }
  const calls = new Map();
  let lastPolicy = '';
  v.steps.forEach((step, i) => {
    const ctx = ctxOf(i, step);
    const now = at(step);
    const policy = step.policy ?? lastPolicy;
    if (file !== null && !pipelines.has(policy)) {
      const p = file.pipeline(policy, ...seed);
      p.setListening(true);
      pipelines.set(policy, p);
    }
    lastPolicy = policy;
    const p = pipelines.get(policy);
    if (p === undefined) throw new Mismatch(`${ctx}: no pipeline`);
    const call = () => {
      const l = label(step, 'call', ctx);
      const c = calls.get(l);
      if (c === undefined) throw new Mismatch(`${ctx}: unknown call label ${l}`);
      return c;
    };
    switch (step.op) {
      case 'begin': {
        if (typeof step.key === 'string') p.beginKeyed(step.key, now, opt(step.deadline));
        else p.begin(now, opt(step.deadline));
        const o = T.out();
        calls.set(label(step, 'as', ctx), { p, index: o[T.CALL], generation: o[T.CALL + 1] });
        break;
      }
      case 'poll': {
        const c = call();
        const code = c.p.poll(c.index, c.generation, now);
        if (typeof step.expectError === 'string') {
          const got = (code & 7) === 5 ? c.p.lastError() : JSON.stringify(stepJson(T, code));
          if (got !== step.expectError) throw new Mismatch(`${ctx}: expected error ${JSON.stringify(step.expectError)}, got ${got}`);
        } else {
          if ((code & 7) === 5) throw new Mismatch(`${ctx}: ${c.p.lastError()}`);
          check(step.expect, stepJson(T, code), ctx);
        }
        break;
      }
      case 'report': {
        const c = call();
        const outcome = ['success', 'failure', 'timeout', 'ignored'].indexOf(step.outcome);
        if (outcome < 0) throw new Mismatch(`${ctx}: unknown outcome ${step.outcome}`);
        const code = c.p.reportOnly(c.index, c.generation, outcome, step.retryable ?? true, opt(step.retryAfter), now);
        if ((code & 7) === 5) throw new Mismatch(`${ctx}: ${c.p.lastError()}`);
        break;
      }
      case 'cancel': {
        const c = call();
        if ((c.p.cancel(c.index, c.generation, now) & 7) === 5) throw new Mismatch(`${ctx}: ${c.p.lastError()}`);
        break;
      }
      case 'wakes': {
        const woke = [];
        while (p.nextWake()) {
          const o = T.out();
          const name = [...calls].find(([, c]) => c.p === p && c.index === o[T.WAKE] && c.generation === o[T.WAKE + 1])?.[0];
          woke.push(name ?? null);
        }
        check(step.expect, woke, ctx);
        break;
      }
      case 'events':
        check(step.expect, drainEvents(T, p), ctx);
        break;
      case 'pollTimeout':
        check(step.expect, nullish(p.pollTimeout()), ctx);
        break;
      case 'stats': {
        const s = p.stats();
        const failed = {};
        for (const k of T.KINDS.slice(1)) failed[k] = s.failed[k] ?? 0;
        const state = p.breakerState();
        check(
          step.expect,
          {
            calls: s.calls,
            succeeded: s.succeeded,
            failed,
            cancelled: s.cancelled,
            attempts: s.attempts,
            inFlight: s.inFlight,
            state: state < 0 ? null : T.STATES[state],
            budgetTokens: s.budgetTokens,
            keys: s.keys ?? null,
          },
          ctx,
        );
        break;
      }
      case 'reconfigure': {
        let got;
        try {
          p.reconfigure(step.config, now);
          got = { ok: true };
        } catch (e) {
          got = { ok: false, error: e.message };
        }
        const prefix = step.expect?.error;
        if (typeof prefix === 'string' && !(got.error ?? '').startsWith(prefix)) {
          throw new Mismatch(`${ctx}: expected error starting ${JSON.stringify(prefix)}, got ${JSON.stringify(got)}`);
        }
        check({ ok: step.expect?.ok ?? null }, got, ctx);
        break;
      }
      default:
        throw new Mismatch(`${ctx}: unknown op ${step.op}`);
    }
  });
  for (const p of pipelines.values()) p.free();
  file?.free();
}

function retry(T, v) {
  const r = new T.raw.RawRetry(v.config, ...seedOf(v));
  const calls = new Map();
  v.steps.forEach((step, i) => {
    const ctx = ctxOf(i, step);
    const now = at(step);
    const call = () => {
      const name = label(step, 'call', ctx);
      if (!calls.has(name)) throw new Mismatch(`${ctx}: unknown call ${name}`);
      return calls.get(name);
    };
    let actual;
    switch (step.op) {
      case 'begin':
        calls.set(label(step, 'as', ctx), r.begin(now));
        break;
      case 'attempt':
        actual = r.attempt(call());
        break;
      case 'failure': {
        const code = r.failure(call(), step.retryable ?? true, opt(step.retryAfter), now, opt(step.deadline));
        const o = T.out();
        if (code === 0) actual = { decision: 'retry', attempt: o[T.ATTEMPTS], delay: o[T.TIME] };
        else if (code === 1) actual = { decision: 'giveUp', reason: T.GIVE_UPS[o[T.KIND]] };
        else actual = { decision: 'unknown' };
        break;
      }
      case 'success':
        r.success(call());
        break;
      case 'budget':
        actual = nullish(r.budget());
        break;
      default:
        throw new Mismatch(`${ctx}: unknown op ${step.op} for kind retry`);
    }
    if ('expect' in step) {
      if (actual === undefined) throw new Mismatch(`${ctx}: this op has no result to expect`);
      check(step.expect, actual, ctx);
    }
  });
  r.free();
}

function health(T, v) {
  let h;
  try {
    h = new T.raw.RawHealth(v.config);
  } catch (e) {
    if (typeof v.expectError !== 'string') throw new Mismatch(`config refused: ${e.message}`);
    if (!firstIssue(e).startsWith(v.expectError)) throw new Mismatch(`config: expected error starting ${JSON.stringify(v.expectError)}, got ${JSON.stringify(firstIssue(e))}`);
    return;
  }
  if (typeof v.expectError === 'string') {
    h.free();
    throw new Mismatch(`config accepted, expected error ${JSON.stringify(v.expectError)}`);
  }
  // Every id ever handed out, by name, so a step can report on an unregistered check.
  const ids = new Map();
  for (const name of Object.keys(v.config?.checks ?? {})) ids.set(name, h.id(name));
  const nameOf = (id) => [...ids].find(([, i]) => i === id)?.[0] ?? null;
  const dueList = (flat) => {
    const list = [];
    for (let i = 0; i < flat.length; i += 2) list.push({ name: h.name(flat[i]) ?? null, deadline: flat[i + 1] });
    return list;
  };
  v.steps.forEach((step, i) => {
    const ctx = ctxOf(i, step);
    const now = at(step);
    let actual;
    switch (step.op) {
      case 'register': {
        const name = label(step, 'name', ctx);
        try {
          ids.set(name, h.register(name, step.config ?? undefined));
          actual = { ok: true, error: null };
        } catch (e) {
          const want = step.expect?.error;
          if (typeof want === 'string') {
            if (!firstIssue(e).startsWith(want)) throw new Mismatch(`${ctx}: expected error starting ${JSON.stringify(want)}, got ${JSON.stringify(firstIssue(e))}`);
            return;
          }
          actual = { ok: false, error: e.message };
        }
        break;
      }
      case 'unregister':
        actual = h.unregister(label(step, 'name', ctx));
        break;
      case 'due':
        actual = dueList(h.due(now));
        break;
      case 'dueAll':
        actual = dueList(h.dueAll(now));
        break;
      case 'report': {
        const name = label(step, 'name', ctx);
        if (!ids.has(name)) throw new Mismatch(`${ctx}: no check ${name} was ever registered`);
        if (typeof step.ok !== 'boolean') throw new Mismatch(`${ctx}: lacks "ok"`);
        const code = h.report(ids.get(name), step.ok, step.latency ?? 0, typeof step.error === 'string' ? step.error : undefined, now);
        actual = { error: code === 0 ? null : 'unknownCheck' };
        break;
      }
      case 'expire':
        h.expire(now);
        actual = null;
        break;
      case 'status':
        actual = T.HEALTH_STATUSES[h.status()];
        break;
      case 'httpStatus':
        actual = h.httpStatus();
        break;
      case 'checkStatus': {
        const id = h.id(label(step, 'name', ctx));
        actual = Number.isNaN(id) ? null : T.CHECK_STATUSES[h.checkStatus(id)] || null;
        break;
      }
      case 'pollTimeout':
        actual = nullish(h.pollTimeout());
        break;
      case 'setBreaker':
        h.setBreaker(label(step, 'name', ctx), label(step, 'state', ctx));
        actual = null;
        break;
      case 'removeBreaker':
        actual = h.removeBreaker(label(step, 'name', ctx));
        break;
      case 'reportJson':
        actual = h.reportJson(step.timestamp ?? '1970-01-01T00:00:00.000Z');
        break;
      case 'metrics':
        actual = h.metrics();
        break;
      case 'events': {
        const events = [];
        for (let c = h.nextEvent(); c !== 0; c = h.nextEvent()) events.push(T.readHealthEvent(c, nameOf));
        actual = events;
        break;
      }
      default:
        throw new Mismatch(`${ctx}: unknown op ${step.op}`);
    }
    if ((step.expect !== undefined && step.expect !== null) || step.op === 'events') check(step.expect ?? null, actual, ctx);
  });
  h.free();
}

function config(T, v) {
  const expect = v.expectError;
  if (typeof expect !== 'string') throw new Mismatch('config vector lacks expectError');
  let err = null;
  try {
    const value = typeof v.configText === 'string' ? T.configInput(v.configText) : v.config;
    T.raw.validateConfig(v.target, value);
  } catch (e) {
    err = e;
  }
  if (err === null) throw new Mismatch(`expected the error ${JSON.stringify(expect)}, but the config was accepted`);
  if (err instanceof TypeError) throw new Mismatch(`unknown target ${v.target}: ${err.message}`);
  const first = firstIssue(err);
  if (!first.startsWith(expect)) throw new Mismatch(`expected an error starting ${JSON.stringify(expect)}, got ${JSON.stringify(first)}`);
}

const RUNNERS = {
  circuitBreaker: breaker,
  rateLimit,
  keyedRateLimit: rateLimit,
  bulkhead,
  pipeline,
  policyFile: pipeline,
  health,
  retry,
  config,
};

/**
 * Replay `vector` through the low-level module `T` (`tripwire/raw`); throws on the first
 * difference, with the step that differs.
 */
export function runVector(T, vector) {
  const run = RUNNERS[vector.kind];
  if (run === undefined) throw new Mismatch(`unknown kind ${JSON.stringify(vector.kind)}`);
  run(T, vector);
}
