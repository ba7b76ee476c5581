"""Replays a conformance vector (tests/vectors/*.json) through the binding's low-level native
API (``tripwire._native``), with the meaning of the Rust reference runner
(core/tests/vectors/*.rs). The format is tests/vectors/README.md. A runner converts units and
calls the API; it never re-implements policy logic."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

from tripwire import _native
from tripwire.errors import ConfigError, UsageError

KINDS = tuple(_native.ERROR_KINDS)
DEFAULT_TIMESTAMP = "1970-01-01T00:00:00.000Z"


class VectorFailure(AssertionError):
    pass


# -- units -----------------------------------------------------------------------------------


def ms_to_ns(v: Any) -> int:
    """Milliseconds to rounded nanoseconds, as the core's ``millis_f64_to_nanos``."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return 0
    x = float(v) * 1_000_000.0
    if math.isnan(x) or x <= 0:
        return 0
    if x >= 18446744073709551615.0:
        return 18446744073709551615  # saturates at u64::MAX, as the core does
    return int(math.floor(x + 0.5))


def at(step: Dict[str, Any]) -> int:
    return ms_to_ns(step.get("at"))


def opt_ns(v: Any) -> Optional[int]:
    return None if not isinstance(v, (int, float)) or isinstance(v, bool) else ms_to_ns(v)


def ms(ns: Optional[int]) -> Optional[float]:
    """Nanoseconds to milliseconds (exact for whole milliseconds), as ``nanos_to_millis_f64``."""
    if ns is None:
        return None
    return (ns // 1_000_000) + (ns % 1_000_000) / 1_000_000.0


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _signed_ns(v: Any) -> int:
    x = float(v) * 1e6
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def check(expected: Any, actual: Any, ctx: str) -> None:
    """Every field of `expected` must match `actual`; numbers match when equal in rounded ns."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k, ev in expected.items():
            check(ev, actual.get(k), f"{ctx}.{k}")
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            raise VectorFailure(f"{ctx}: expected {json.dumps(expected)}, got {json.dumps(actual)}")
        for i, (ev, av) in enumerate(zip(expected, actual)):
            check(ev, av, f"{ctx}[{i}]")
        return
    if _is_num(expected) and _is_num(actual):
        if _signed_ns(expected) != _signed_ns(actual):
            raise VectorFailure(f"{ctx}: expected {expected}, got {actual}")
        return
    if type(expected) is type(actual) and expected == actual:
        return
    if expected is None and actual is None:
        return
    raise VectorFailure(f"{ctx}: expected {json.dumps(expected)}, got {json.dumps(actual)}")


def event_json(t: Tuple[Any, ...]) -> Dict[str, Any]:
    """A native event tuple ``(type, at_ns, a, b)`` in the vector format."""
    kind, at_ns, a, b = t
    if kind in ("stateChanged", "storeStateChanged"):
        return {"type": kind, "from": a, "to": b, "at": ms(at_ns)}
    if kind == "rejected":
        return {"type": kind, "reason": a, "retryAfter": ms(b), "at": ms(at_ns)}
    if kind == "retryScheduled":
        return {"type": kind, "attempt": a, "delay": ms(b), "at": ms(at_ns)}
    if kind == "gaveUp":
        return {"type": kind, "reason": a, "attempts": b, "at": ms(at_ns)}
    if kind in ("queued", "woken"):
        return {"type": kind, "ticket": a, "at": ms(at_ns)}
    return {"type": kind, "at": ms(at_ns)}


def check_events(step: Dict[str, Any], drained: List[Tuple[Any, ...]], ctx: str) -> None:
    check(step.get("expect"), [event_json(t) for t in drained], ctx)


def label(step: Dict[str, Any], field: str) -> str:
    v = step.get(field)
    if not isinstance(v, str):
        raise VectorFailure(f"step lacks {field!r}: {json.dumps(step)}")
    return v


def ctx_of(i: int, step: Dict[str, Any]) -> str:
    return f"step {i} ({step.get('op', '?')})"


def first_issue(e: ConfigError) -> str:
    path, reason = e.issues[0]
    return f"{path}: {reason}" if path else reason


# -- circuitBreaker --------------------------------------------------------------------------


def run_breaker(v: Dict[str, Any]) -> None:
    config = json.dumps(v["config"])
    breaker = _native.CircuitBreaker(config)
    permits: Dict[str, Any] = {}
    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        now = at(step)
        op = step.get("op", "")

        def permit() -> Any:
            name = label(step, "permit")
            if name not in permits:
                raise VectorFailure(f"{c}: no permit labelled {name!r}")
            return permits[name]

        actual: Any = None
        if op == "acquire":
            admitted, retry_after, p = breaker.acquire(now)
            if admitted and isinstance(step.get("as"), str):
                permits[step["as"]] = p
            actual = {"admitted": admitted, "retryAfter": ms(retry_after)}
        elif op == "record":
            breaker.record(permit(), step.get("outcome", ""), now)
        elif op == "release":
            breaker.release(permit(), now)
        elif op == "state":
            actual = breaker.state()
        elif op == "forceOpen":
            breaker.force_open(now)
        elif op == "disable":
            breaker.disable(now)
        elif op == "reset":
            breaker.reset(now)
        elif op == "pollTimeout":
            actual = ms(breaker.poll_timeout())
        elif op == "snapshotRestore":
            text = breaker.snapshot()
            fresh = _native.CircuitBreaker(config)
            fresh.restore(text, now)
            breaker = fresh
        elif op == "metrics":
            actual = json.loads(breaker.metrics_json())
        elif op == "events":
            check_events(step, breaker.take_events(), c)
            continue
        else:
            raise VectorFailure(f"{c}: unknown circuitBreaker op {op!r}")
        if "expect" in step:
            check(step["expect"], actual, c)


# -- rateLimit, keyedRateLimit ---------------------------------------------------------------


def decision_json(d: Tuple[bool, int, Optional[int]]) -> Dict[str, Any]:
    allowed, wait, retry_after = d
    if allowed:
        return {"allowed": True, "wait": ms(wait) if wait else 0, "retryAfter": None}
    return {"allowed": False, "wait": 0, "retryAfter": ms(retry_after)}


def run_rate_limit(v: Dict[str, Any]) -> None:
    if not v.get("description"):
        raise VectorFailure("a vector needs a description")
    config = json.dumps(v["config"])
    keyed = v["kind"] == "keyedRateLimit"
    limiter = _native.KeyedRateLimiter(config, v.get("seed", 0)) if keyed else _native.RateLimiter(config)
    limiter.set_listening(True)
    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        now = at(step)
        op = step.get("op", "")
        if op == "check":
            cost = step.get("cost")
            if cost is None:
                cost = 1
            if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
                raise VectorFailure(f"{c}: cost must be a whole number, got {cost!r}")
            if keyed:
                key = step.get("key")
                if not isinstance(key, str):
                    raise VectorFailure(f"{c}: a keyed check needs a key")
                actual: Any = decision_json(limiter.check_at(key, now, cost))
            else:
                actual = decision_json(limiter.check_at(now, cost))
        elif op == "events":
            check_events(step, limiter.take_events(), c)
            continue
        elif op == "keys" and keyed:
            actual = limiter.keys()
        else:
            raise VectorFailure(f"{c}: unknown op {op!r} for {v['kind']}")
        if step.get("expect") is not None:
            check(step["expect"], actual, c)


# -- sharedRateLimit (and gcra rateLimit vectors through the shared path) ------------------------

#: Runs a store request on the store under test and returns its reply.
Store = Callable[[Any], Any]


_DEFAULT: List[Any] = []


def _default_store() -> Store:
    """The Redis store of this test run (scripts/ci/test-python.sh starts a private
    redis-server and exports TRIPWIRE_REDIS_URL), emptied for each vector."""
    import os

    if not _DEFAULT:
        url = os.environ.get("TRIPWIRE_REDIS_URL")
        if not url:
            raise VectorFailure(
                "sharedRateLimit vectors run on Redis: set TRIPWIRE_REDIS_URL (scripts/ci/test-python.sh does)"
            )
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from tripwire.redis_store import RedisStore

        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
        _DEFAULT.append(RedisStore(client))
    store = _DEFAULT[0]
    store.client.flushall()
    return lambda request: store.run(request)


def close_default_store() -> None:
    while _DEFAULT:
        _DEFAULT.pop().client.close()


def shared_decision_json(d: Tuple[bool, int, Optional[int], str], sent: bool) -> Dict[str, Any]:
    allowed, wait, retry_after, source = d
    return {**decision_json((allowed, wait, retry_after)), "source": source, "sent": sent}


def _reply_for(step: Dict[str, Any], request: Any, store: Store, c: str) -> Any:
    r = step.get("reply", "store")
    if r == "store":
        return store(request)
    if r in ("timeout", "unavailable"):
        return r
    if r == "failed":
        return ("failed", "WRONGTYPE Operation against a key")
    raise VectorFailure(f"{c}: unknown reply {r!r}")


def _cost(step: Dict[str, Any], c: str) -> int:
    cost = step.get("cost")
    if cost is None:
        return 1
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise VectorFailure(f"{c}: cost must be a whole number, got {cost!r}")
    return cost


def _shared_check(limiter: Any, step: Dict[str, Any], key: str, cost: int, store: Store, c: str) -> Dict[str, Any]:
    now = at(step)
    r = limiter.check(key, now, cost)
    if isinstance(r, tuple):
        return shared_decision_json(r, False)
    request = limiter.request(r)
    if request is None:
        raise VectorFailure(f"{c}: a sent request must be readable")
    return shared_decision_json(limiter.reply(r, _reply_for(step, request, store, c), now), True)


def run_shared(v: Dict[str, Any], store: Optional[Store] = None) -> None:
    """A ``sharedRateLimit`` vector, its store requests answered by ``store`` (default: the
    real script on this run's Redis)."""
    if not v.get("description"):
        raise VectorFailure("a vector needs a description")
    store = store or _default_store()
    limiter = _native.SharedLimiter(json.dumps(v["config"]), v.get("seed", 0))
    limiter.use_host_clock(True)
    limiter.set_listening(True)
    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        op = step.get("op", "")
        if op == "check":
            key = step.get("key", "")
            actual: Any = _shared_check(limiter, step, key, _cost(step, c), store, c)
        elif op == "storeState":
            actual = limiter.store_state()
        elif op == "metrics":
            actual = json.loads(limiter.metrics_json())
        elif op == "events":
            check_events(step, limiter.take_events(), c)
            continue
        else:
            raise VectorFailure(f"{c}: unknown op {op!r} for sharedRateLimit")
        if step.get("expect") is not None:
            check(step["expect"], actual, c)


def is_gcra(v: Dict[str, Any]) -> bool:
    """Whether a ``rateLimit`` vector can replay through the shared path: every limit gcra."""
    if v.get("kind") != "rateLimit":
        return False
    config = v.get("config")
    limits = config if isinstance(config, list) else [config]
    return all(isinstance(l, dict) and l.get("algorithm") == "gcra" for l in limits)


def replay_gcra(v: Dict[str, Any], store: Store) -> None:
    """A gcra rate-limit vector's checks through a shared limiter and ``store``: every
    decision must equal the in-memory limiter's (events are the pipeline's business)."""
    name = v.get("name", "vector")
    config = {"rateLimit": v["config"], "store": {"key": f"vectors:{name}"}}
    limiter = _native.SharedLimiter(json.dumps(config), 0)
    limiter.use_host_clock(True)
    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        if step.get("op") != "check":
            continue
        actual = _shared_check(limiter, step, "", _cost(step, c), store, c)
        check(step["expect"], actual, f"shared {c}")


# -- bulkhead --------------------------------------------------------------------------------


def run_bulkhead(v: Dict[str, Any]) -> None:
    bulkhead = _native.Bulkhead(json.dumps(v["config"]))
    tickets: Dict[str, int] = {}

    def name_of(ticket: int) -> str:
        for name, t in tickets.items():
            if t == ticket:
                return name
        return f"#{ticket}"

    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        now = at(step)
        op = step.get("op", "")
        if op == "enter":
            result, until, reason, ticket = bulkhead.enter(now, opt_ns(step.get("deadline")))
            if result == "queued" and isinstance(step.get("as"), str):
                tickets[step["as"]] = ticket
            actual: Any = {"result": result, "until": ms(until), "reason": reason}
        elif op == "release":
            woke = bulkhead.release(now)
            actual = {"woke": None if woke is None else name_of(woke)}
        elif op == "cancel":
            name = label(step, "ticket")
            if name not in tickets:
                raise VectorFailure(f"{c}: no ticket labelled {name!r}")
            actual = bulkhead.cancel(tickets[name], now, bool(step.get("timedOut", False)))
        elif op == "stats":
            m = json.loads(bulkhead.metrics_json())
            actual = {
                "inFlight": m["inFlight"],
                "queued": m["queueDepth"],
                "queueDepth": m["queueDepth"],
                "queuedTotal": m["queued"],
                "admitted": m["admitted"],
                "woken": m["woken"],
                "rejectedFull": m["rejectedFull"],
                "queueTimeouts": m["queueTimeouts"],
                "cancelled": m["cancelled"],
                "unmatchedReleases": m["unmatchedReleases"],
                "maxConcurrent": m["maxConcurrent"],
                "maxQueue": m["maxQueue"],
            }
        elif op == "events":
            check_events(step, bulkhead.take_events(), c)
            continue
        else:
            raise VectorFailure(f"{c}: unknown bulkhead op {op!r}")
        if "expect" in step:
            check(step["expect"], actual, c)


# -- pipeline, policyFile --------------------------------------------------------------------

OUTCOMES = {
    "success": _native.OUTCOME_SUCCESS,
    "failure": _native.OUTCOME_FAILURE,
    "timeout": _native.OUTCOME_TIMEOUT,
    "ignored": _native.OUTCOME_IGNORED,
}


def step_json(t: Tuple[Any, ...]) -> Dict[str, Any]:
    tag = t[0]
    if tag == _native.STEP_ATTEMPT:
        return {"step": "attempt", "attempt": t[1], "deadline": ms(t[2])}
    if tag == _native.STEP_SLEEP:
        return {"step": "sleep", "until": ms(t[1])}
    if tag == _native.STEP_PARK:
        return {"step": "park", "until": ms(t[1])}
    if tag == _native.STEP_DONE:
        return {"step": "done", "attempts": t[1]}
    if tag == _native.STEP_FAIL:
        _, code, retry_after, attempts, fallback, cause = t
        return {
            "step": "fail",
            "kind": KINDS[code - 1],
            "retryAfter": ms(retry_after),
            "attempts": attempts,
            "fallback": fallback,
            "cause": None if cause is None else KINDS[cause - 1],
        }
    return {"step": "unknown"}


def stats_json(p: Any) -> Dict[str, Any]:
    s = json.loads(p.stats_json())
    failed = {k: s["failed"].get(k, 0) for k in KINDS}
    return {
        "calls": s["calls"],
        "succeeded": s["succeeded"],
        "failed": failed,
        "cancelled": s["cancelled"],
        "attempts": s["attempts"],
        "inFlight": s["inFlight"],
        "state": p.breaker_state(),
        "budgetTokens": s["budgetTokens"],
        "keys": s.get("keys"),
    }


def run_pipeline(v: Dict[str, Any]) -> None:
    seed = v.get("seed", 0)
    text = json.dumps(v["config"])
    file = _native.PolicyFile(text) if v["kind"] == "policyFile" else None
    pipelines: Dict[str, Any] = {}
    if file is None:
        pipelines[""] = _native.Pipeline(text, seed)
        pipelines[""].set_listening(True)
    calls: Dict[str, Tuple[str, int]] = {}
    last_policy = ""
    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        now = at(step)
        policy = step["policy"] if isinstance(step.get("policy"), str) else last_policy
        if file is not None and policy not in pipelines:
            pipelines[policy] = file.pipeline(policy, seed)
            pipelines[policy].set_listening(True)
        last_policy = policy
        p = pipelines.get(policy)

        def call_of() -> Tuple[str, int]:
            name = label(step, "call")
            if name not in calls:
                raise VectorFailure(f"{c}: unknown call label {name!r}")
            return calls[name]

        op = step.get("op", "")
        if op == "begin":
            if p is None:
                raise VectorFailure(f"{c}: no pipeline")
            calls[label(step, "as")] = (
                policy,
                p.begin(now, opt_ns(step.get("deadline")), step.get("key")),
            )
        elif op == "poll":
            owner, cid = call_of()
            want = step.get("expectError")
            try:
                got = pipelines[owner].poll(cid, now)
            except UsageError as e:
                if want is not None and str(e) == want:
                    continue
                raise VectorFailure(f"{c}: expected {want!r}, got error {e}") from e
            if want is not None:
                raise VectorFailure(f"{c}: expected the error {want!r}, got {step_json(got)}")
            check(step.get("expect"), step_json(got), c)
        elif op == "report":
            owner, cid = call_of()
            outcome = step.get("outcome", "")
            if outcome not in OUTCOMES:
                raise VectorFailure(f"{c}: unknown outcome {outcome!r}")
            retryable = step.get("retryable", True)
            hint = step.get("retryAfter")
            pipelines[owner].report(cid, OUTCOMES[outcome], bool(retryable), None if not _is_num(hint) else ms_to_ns(hint), now)
        elif op == "cancel":
            owner, cid = call_of()
            pipelines[owner].cancel(cid, now)
        elif op == "wakes":
            woke = []
            for w in p.take_wakes():
                woke.append(next((k for k, (pol, cid) in calls.items() if cid == w and pol == policy), None))
            check(step.get("expect"), woke, c)
        elif op == "events":
            check_events(step, p.take_events(), c)
        elif op == "pollTimeout":
            check(step.get("expect"), ms(p.poll_timeout()), c)
        elif op == "stats":
            check(step.get("expect"), stats_json(p), c)
        elif op == "reconfigure":
            try:
                p.reconfigure(json.dumps(step["config"]), now)
                got: Dict[str, Any] = {"ok": True}
            except ConfigError as e:
                got = {"ok": False, "error": str(e)}
            expect = step.get("expect") or {}
            prefix = expect.get("error")
            if isinstance(prefix, str) and not str(got.get("error") or "").startswith(prefix):
                raise VectorFailure(f"{c}: expected error starting {prefix!r}, got {got}")
            check({"ok": expect.get("ok")}, got, c)
        else:
            raise VectorFailure(f"{c}: unknown op {op!r}")


# -- retry -----------------------------------------------------------------------------------


def run_retry(v: Dict[str, Any]) -> None:
    retry = _native.Retry(json.dumps(v["config"]), v.get("seed", 0))
    calls: Dict[str, int] = {}
    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        now = at(step)
        op = step.get("op", "")

        def call() -> int:
            name = label(step, "call")
            if name not in calls:
                raise VectorFailure(f"{c}: unknown call {name!r}")
            return calls[name]

        actual: Any = None
        has_result = True
        if op == "begin":
            calls[label(step, "as")] = retry.start(now)
            has_result = False
        elif op == "attempt":
            actual = retry.begin_attempt(call())
        elif op == "failure":
            hint = step.get("retryAfter")
            d = retry.on_failure(
                call(),
                bool(step.get("retryable", True)),
                ms_to_ns(hint) if _is_num(hint) else None,
                now,
                opt_ns(step.get("deadline")),
            )
            if d[0] == "retry":
                actual = {"decision": "retry", "attempt": d[1], "delay": ms(d[2])}
            else:
                actual = {"decision": "giveUp", "reason": d[1]}
        elif op == "success":
            retry.on_success(call())
            has_result = False
        elif op == "budget":
            actual = retry.budget()
        else:
            raise VectorFailure(f"{c}: unknown op {op!r} for kind retry")
        if "expect" in step:
            if not has_result:
                raise VectorFailure(f"{c}: this op has no result to expect")
            check(step["expect"], actual, c)


# -- fleet -----------------------------------------------------------------------------------

#: The most steps one fleet call may take (a store round trip or two, an attempt, the end).
FLEET_CALL_STEPS = 16


def _fleet_call(p: Any, step: Dict[str, Any], store: Store, c: str) -> Dict[str, Any]:
    """One call through pipeline `p` at the step's `at`, every store step answered by `store`
    and the attempt (if one runs) ending with the step's `outcome` (not retryable, no hint):
    ``{"result": "ok" | "failed" | <error kind>, "requests": <store requests carried>}``."""
    now = at(step)
    outcome = step.get("outcome", "success")
    if outcome not in ("success", "failure"):
        raise VectorFailure(f"{c}: unknown outcome {outcome!r}")
    code = _native.OUTCOME_SUCCESS if outcome == "success" else _native.OUTCOME_FAILURE
    requests = 0
    try:
        call = p.begin(now)
        for _ in range(FLEET_CALL_STEPS):
            s = p.poll(call, now)
            tag = s[0]
            if tag == _native.STEP_STORE:
                requests += 1
                request = p.store_request(s[2])
                if request is None:
                    raise VectorFailure(f"{c}: a store step names its request")
                p.report_store(call, store(request), now)
            elif tag == _native.STEP_ATTEMPT:
                p.report(call, code, False, None, now)
            elif tag == _native.STEP_DONE:
                return {"result": "ok", "requests": requests}
            elif tag == _native.STEP_FAIL:
                kind = KINDS[s[1] - 1]
                return {"result": "failed" if kind == "failure" else kind, "requests": requests}
            else:
                raise VectorFailure(f"{c}: unexpected step {step_json(s)}")
    except UsageError as e:
        raise VectorFailure(f"{c}: {e}") from e
    raise VectorFailure(f"{c}: a call did not end within {FLEET_CALL_STEPS} steps")


def run_fleet(v: Dict[str, Any], store: Optional[Store] = None, *, host_clock: bool = True) -> None:
    """A ``fleet`` vector: ``instances`` pipelines (host seeds 1..N, store scripts on the
    host's clock) whose store requests ``store`` answers (default: the real scripts on this
    run's Redis, emptied first). ``host_clock=False`` leaves the scripts on the store's clock,
    as in production (only to show that the vectors need the hook)."""
    if not v.get("description"):
        raise VectorFailure("a vector needs a description")
    n = v.get("instances")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise VectorFailure(f"instances: must be a positive whole number, got {n!r}")
    store = store or _default_store()
    text = json.dumps(v["config"])
    fleet = []
    for i in range(n):
        p = _native.Pipeline(text, i + 1)
        p._use_store_host_clock(host_clock)
        fleet.append(p)
    try:
        for i, step in enumerate(v["steps"]):
            c = ctx_of(i, step)
            k = step.get("instance")
            if not isinstance(k, int) or isinstance(k, bool):
                raise VectorFailure(f"{c}: instance")
            if not 0 <= k < n:
                raise VectorFailure(f"{c}: no instance {k}")
            p = fleet[k]
            op = step.get("op", "")
            if op == "call":
                actual: Any = _fleet_call(p, step, store, c)
            elif op == "state":
                actual = p.breaker_state()
                if actual is None:
                    raise VectorFailure(f"{c}: no breaker")
            elif op == "share":
                actual = json.loads(p.stats_json()).get("share")
            else:
                raise VectorFailure(f"{c}: unknown op {op!r} for fleet")
            check(step.get("expect"), actual, f"{c} (instance {k})")
    finally:
        for p in fleet:
            p.close()


# -- health ----------------------------------------------------------------------------------


def health_event_json(t: Tuple[Any, ...]) -> Dict[str, Any]:
    kind, at_ns, check_name, a, b = t
    if kind == "checkChanged":
        return {"type": kind, "check": check_name, "from": a, "to": b, "at": ms(at_ns)}
    if kind == "timedOut":
        return {"type": kind, "check": check_name, "at": ms(at_ns)}
    if kind == "statusChanged":
        return {"type": kind, "from": a, "to": b, "at": ms(at_ns)}
    return {"type": kind, "at": ms(at_ns)}


def run_health(v: Dict[str, Any]) -> None:
    want = v.get("expectError")
    try:
        reg = _native.HealthRegistry(json.dumps(v.get("config")))
    except ConfigError as e:
        if want is None:
            raise VectorFailure(f"config refused: {e}") from e
        if not first_issue(e).startswith(want):
            raise VectorFailure(f"config: expected error starting {want!r}, got {first_issue(e)!r}") from e
        return
    if want is not None:
        raise VectorFailure(f"config accepted, expected error {want!r}")
    ids: Dict[str, int] = {}
    for name in (v.get("config") or {}).get("checks", {}):
        cid = reg.id(name)
        if cid is not None:
            ids[name] = cid
    for i, step in enumerate(v["steps"]):
        c = ctx_of(i, step)
        now = at(step)
        op = step.get("op", "")
        actual: Any = None
        if op == "register":
            name = label(step, "name")
            cfg = step.get("config")
            try:
                ids[name] = reg.register(name, None if cfg is None else json.dumps(cfg))
                actual = {"ok": True, "error": None}
            except ConfigError as e:
                prefix = (step.get("expect") or {}).get("error")
                if isinstance(prefix, str):
                    if not first_issue(e).startswith(prefix):
                        raise VectorFailure(f"{c}: expected error starting {prefix!r}, got {first_issue(e)!r}") from e
                    continue
                actual = {"ok": False, "error": str(e)}
        elif op == "unregister":
            actual = reg.unregister(label(step, "name"))
        elif op in ("due", "dueAll"):
            due = reg.due(now) if op == "due" else reg.due_all(now)
            actual = [{"name": n, "deadline": ms(d)} for _, n, d in due]
        elif op == "report":
            name = label(step, "name")
            if name not in ids:
                raise VectorFailure(f"{c}: no check {name!r} was ever registered")
            if not isinstance(step.get("ok"), bool):
                raise VectorFailure(f"{c}: lacks \"ok\"")
            try:
                reg.report(ids[name], step["ok"], ms_to_ns(step.get("latency")), step.get("error"), now)
                actual = {"error": None}
            except UsageError as e:
                actual = {"error": e.reason if e.reason == "unknownCheck" else str(e)}
        elif op == "expire":
            reg.expire(now)
        elif op == "status":
            actual = reg.status()
        elif op == "httpStatus":
            actual = reg.http_status()
        elif op == "checkStatus":
            actual = reg.check_status(label(step, "name"))
        elif op == "pollTimeout":
            actual = ms(reg.poll_timeout())
        elif op == "setBreaker":
            reg.set_breaker(label(step, "name"), label(step, "state"))
        elif op == "removeBreaker":
            actual = reg.remove_breaker(label(step, "name"))
        elif op == "reportJson":
            ts = step.get("timestamp")
            actual = json.loads(reg.report_json(ts if isinstance(ts, str) else DEFAULT_TIMESTAMP))
        elif op == "metrics":
            actual = json.loads(reg.metrics_json())
        elif op == "events":
            actual = [health_event_json(t) for t in reg.take_events()]
        else:
            raise VectorFailure(f"{c}: unknown op {op!r}")
        if step.get("expect") is not None or op == "events":
            check(step.get("expect"), actual, c)


# -- config ----------------------------------------------------------------------------------


def run_config(v: Dict[str, Any]) -> None:
    text = v["configText"] if isinstance(v.get("configText"), str) else json.dumps(v.get("config"))
    want = v.get("expectError")
    if not isinstance(want, str):
        raise VectorFailure("config vector lacks expectError")
    target = v.get("target", "")
    try:
        _native.validate(target, text)
    except ConfigError as e:
        if not first_issue(e).startswith(want):
            raise VectorFailure(f"expected an error starting {want!r}, got {first_issue(e)!r}") from e
        return
    raise VectorFailure(f"expected the error {want!r}, but the config was accepted")


RUNNERS: Dict[str, Callable[[Dict[str, Any]], None]] = {
    "circuitBreaker": run_breaker,
    "rateLimit": run_rate_limit,
    "keyedRateLimit": run_rate_limit,
    "bulkhead": run_bulkhead,
    "pipeline": run_pipeline,
    "policyFile": run_pipeline,
    "health": run_health,
    "retry": run_retry,
    "config": run_config,
    "sharedRateLimit": run_shared,
    "fleet": run_fleet,
}

#: The kinds whose vectors need a store (a Redis server): the others run on the core alone.
STORE_KINDS = frozenset({"sharedRateLimit", "fleet"})


def run(v: Dict[str, Any]) -> None:
    kind = v.get("kind", "")
    if kind not in RUNNERS:
        raise VectorFailure(f"unknown kind {kind!r}")
    RUNNERS[kind](v)
