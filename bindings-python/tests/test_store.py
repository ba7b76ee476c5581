"""A rate limit shared through Redis, as users write it: ``Pipeline(config, store=client)``
with redis-py's sync and asyncio clients, several instances on one key, the store down or
frozen (the fallback decides within the store timeout, nothing is resent, the store decides
again after recovery), error replies, a breaker shared by several instances
(``circuitBreaker.share``: its metrics, events and votes), the raw ``SharedLimiter``, and bad
input."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

import tripwire
from tripwire import CircuitOpenError, ConfigError, Event, Pipeline, RateLimitedError, UsageError, _native, load_policies
from tripwire.redis_store import AsyncRedisStore, RedisStore, scripts
from tripwire.testing import FakeClock

TIMEOUT = 0.025
#: How much later than the store timeout a call may complete: scheduling noise on a loaded
#: 2-core CI machine, yet less than one more timeout (a resend would show).
SLACK = 0.010
#: The store timeout of the outage tests, and their slack (below one more timeout).
OUTAGE_TIMEOUT = 0.05
OUTAGE_SLACK = 0.03


def limit(key: str, rate: str = "10/s", burst: int = 3, **store: Any) -> Dict[str, Any]:
    return {"rateLimit": {"algorithm": "gcra", "rate": rate, "burst": burst}, "store": {"key": key, **store}}


def sync_client(url: str, timeout: Optional[float] = TIMEOUT) -> Any:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def async_client(url: str) -> Any:
    return redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def admin(redis_url: str) -> Iterator[Any]:
    c = redis.Redis.from_url(redis_url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def client(redis_url: str, admin: Any) -> Iterator[Any]:
    c = sync_client(redis_url)
    yield c
    c.close()


def ok() -> str:
    return "ok"


async def aok() -> str:
    return "ok"


def outcomes(p: Pipeline, n: int) -> List[str]:
    out = []
    for _ in range(n):
        try:
            out.append(p.call(ok))
        except RateLimitedError:
            out.append("limited")
    return out


# -- the store decides ---------------------------------------------------------------------


def test_a_shared_limit_admits_the_burst_then_refuses_with_retry_after(client: Any) -> None:
    api = Pipeline(limit("burst"), store=client)
    assert [api.call(ok) for _ in range(3)] == ["ok"] * 3
    with pytest.raises(RateLimitedError) as e:
        api.call(ok)
    assert e.value.code == "rateLimited"
    assert e.value.retry_after is not None and 0.05 < e.value.retry_after <= 0.1
    # The denial is cached until its retry-after: the next refusal costs no round trip.
    with pytest.raises(RateLimitedError):
        api.call(ok)
    s = api.stats()["store"]
    assert (s["storeAllowed"], s["storeDenied"], s["cacheDenied"], s["requests"]) == (3, 1, 1, 4)
    assert isinstance(api.store, RedisStore) and api.store.sent == 4
    assert api.stats()["failed"]["rateLimited"] == 2


def test_a_decorated_function_waits_for_the_store_then_runs(client: Any) -> None:
    api = Pipeline(limit("deco", burst=2), store=client)
    calls: List[int] = []

    @api
    def work(x: int) -> int:
        calls.append(x)
        return x * 2

    assert work(1) == 2 and work(2) == 4
    with pytest.raises(RateLimitedError):
        work(3)
    assert calls == [1, 2], "a refused call never runs the function"


def test_asyncio_client_call_async_and_async_def(redis_url: str, admin: Any) -> None:
    async def main() -> None:
        c = async_client(redis_url)
        try:
            api = Pipeline(limit("async", burst=3), store=c)
            assert isinstance(api.store, AsyncRedisStore)

            @api
            async def work() -> str:
                return "done"

            assert await api.call_async(aok) == "ok"
            assert await work() == "done"
            assert await api.call_async(aok) == "ok"
            with pytest.raises(RateLimitedError) as e:
                await work()
            assert e.value.retry_after is not None and e.value.retry_after > 0.05
            assert api.store.sent == 4 and api.stats()["store"]["storeAllowed"] == 3
            assert await api.store.load_scripts() == [s.sha1 for s in scripts()]
        finally:
            await c.aclose()

    asyncio.run(main())


def test_a_sync_client_also_serves_call_async(client: Any) -> None:
    api = Pipeline(limit("sync-in-async", burst=1), store=client)

    async def main() -> None:
        assert await api.call_async(aok) == "ok"
        with pytest.raises(RateLimitedError):
            await api.call_async(aok)

    asyncio.run(main())
    assert api.store.sent == 2


def test_an_asyncio_client_refuses_sync_calls_clearly(redis_url: str, admin: Any) -> None:
    async def main() -> None:
        c = async_client(redis_url)
        try:
            api = Pipeline(limit("async-only"), store=c)
            with pytest.raises(UsageError, match="asyncio client: use call_async") as e:
                api.call(ok)
            assert e.value.reason == "asyncStore"
            s = api.stats()
            assert (s["cancelled"], s["inFlight"], s["store"]["inFlight"]) == (1, 0, 0)
        finally:
            await c.aclose()

    asyncio.run(main())


def test_two_instances_on_one_key_share_the_limit(redis_url: str, client: Any) -> None:
    other = sync_client(redis_url)
    try:
        a = Pipeline(limit("shared", burst=4), store=client)
        b = Pipeline(limit("shared", burst=4), store=other)
        assert outcomes(a, 2) + outcomes(b, 2) == ["ok"] * 4
        assert outcomes(a, 1) == ["limited"] and outcomes(b, 1) == ["limited"]
        # A third instance on another key is not affected.
        c = Pipeline(limit("elsewhere", burst=4), store=client)
        assert outcomes(c, 1) == ["ok"]
    finally:
        other.close()


def test_a_sync_and_an_asyncio_instance_share_one_limit(redis_url: str, client: Any) -> None:
    sync_api = Pipeline(limit("mixed", burst=3), store=client)
    assert outcomes(sync_api, 2) == ["ok", "ok"]

    async def main() -> List[str]:
        c = async_client(redis_url)
        try:
            api = Pipeline(limit("mixed", burst=3), store=c)
            out = []
            for _ in range(2):
                try:
                    out.append(await api.call_async(aok))
                except RateLimitedError:
                    out.append("limited")
            return out
        finally:
            await c.aclose()

    assert asyncio.run(main()) == ["ok", "limited"]


def test_load_policies_gives_the_client_to_the_pipelines_with_a_store(client: Any) -> None:
    policies = load_policies(
        {"policies": {"partner": limit("partner", burst=1), "local": {"retry": {"maxRetries": 1}}}},
        store=client,
    )
    assert isinstance(policies["partner"].store, RedisStore) and policies["local"].store is None
    assert outcomes(policies["partner"], 2) == ["ok", "limited"]
    assert policies["partner"].stats()["store"]["storeAllowed"] == 1


# -- the store is down, frozen or misconfigured ------------------------------------------


@pytest.mark.parametrize(
    ("on_unavailable", "expected"),
    [
        # local: this instance's share, rate/N and burst/N (N = 2): 2 of the burst of 4.
        ("local", ["ok", "ok", "limited", "limited", "limited"]),
        ("allow", ["ok"] * 5),
        ("deny", ["limited"] * 5),
    ],
)
def test_a_closed_port_falls_back_at_once(on_unavailable: str, expected: List[str]) -> None:
    c = sync_client(f"redis://127.0.0.1:{free_port()}/")
    try:
        api = Pipeline(
            limit("down", burst=4, onUnavailable=on_unavailable, expectedInstances=2),
            store=c,
        )
        started = time.monotonic()
        assert outcomes(api, 5) == expected
        assert time.monotonic() - started < 5 * (TIMEOUT + SLACK)
        s = api.stats()["store"]
        # Three refusals open the store breaker: then no request is even emitted.
        assert (s["requests"], s["unavailable"], s["storeState"]) == (3, 3, "open")
        assert (api.store.sent, api.store.unavailable, api.store.evals) == (3, 3, 0), "never resent"
        assert s["fallbackAllowed"] == expected.count("ok")
    finally:
        c.close()


def test_without_a_store_client_every_request_is_unavailable() -> None:
    api = Pipeline(limit("no-client", burst=4, expectedInstances=2))
    assert api.store is None
    assert outcomes(api, 3) == ["ok", "ok", "limited"]
    s = api.stats()["store"]
    assert (s["unavailable"], s["fallbackAllowed"], s["storeState"]) == (3, 2, "open")


def freeze(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


def test_a_frozen_store_times_out_within_the_timeout_then_decides_again(redis_url: str, admin: Any, redis_pid: int) -> None:
    client = sync_client(redis_url, OUTAGE_TIMEOUT)
    try:
        api = Pipeline(limit("frozen", rate="1000/s", burst=100, timeout="50ms"), store=client)
        events: List[Event] = []
        api.on("storeStateChanged", events.append)
        assert api.call(ok) == "ok"  # connected, script loaded
        evals = api.store.evals
        latencies = []
        freeze(redis_pid)
        try:
            for _ in range(6):
                t = time.monotonic()
                assert api.call(ok) == "ok"  # the local fallback (rate/1) admits
                latencies.append(time.monotonic() - t)
            s = api.stats()["store"]
        finally:
            thaw(redis_pid)
        assert max(latencies) < OUTAGE_TIMEOUT + OUTAGE_SLACK, latencies
        assert all(x < 0.005 for x in latencies[3:]), "with the store breaker open, nothing waits"
        assert (s["timeouts"], s["requests"], s["fallbackAllowed"], s["storeState"]) == (3, 4, 6, "open")
        assert (api.store.sent, api.store.timeouts, api.store.evals) == (4, 3, evals), "no request was resent"
        assert [(e.from_state, e.to_state) for e in events] == [("closed", "open")]
        time.sleep(0.55)  # the store breaker's open period (500 ms): then one probe
        assert api.call(ok) == "ok"
        s = api.stats()["store"]
        assert (s["storeAllowed"], s["storeState"]) == (2, "closed"), "the store decides again"
        assert [e.to_state for e in events] == ["open", "halfOpen", "closed"]
    finally:
        client.close()


def test_a_frozen_store_under_asyncio(redis_url: str, admin: Any, redis_pid: int) -> None:
    async def main() -> None:
        c = async_client(redis_url)
        try:
            api = Pipeline(limit("frozen-async", rate="1000/s", burst=100, timeout="50ms", onUnavailable="deny"), store=c)
            assert await api.call_async(aok) == "ok"
            latencies = []
            freeze(redis_pid)
            try:
                for _ in range(4):
                    t = time.monotonic()
                    with pytest.raises(RateLimitedError):
                        await api.call_async(aok)
                    latencies.append(time.monotonic() - t)
            finally:
                thaw(redis_pid)
            assert max(latencies) < OUTAGE_TIMEOUT + OUTAGE_SLACK, latencies
            s = api.stats()["store"]
            assert (s["timeouts"], s["fallbackDenied"], s["storeState"]) == (3, 4, "open")
            assert (api.store.sent, api.store.timeouts) == (4, 3), "no request was resent"
            await asyncio.sleep(0.55)
            assert await api.call_async(aok) == "ok"
            assert api.stats()["store"]["storeState"] == "closed"
        finally:
            await c.aclose()

    asyncio.run(main())


def test_a_wrongtype_reply_fails_without_opening_the_store_breaker(client: Any, admin: Any) -> None:
    admin.hset("tw:{rl:wrongtype:}:0", "a", "b")  # the limit's key holds a hash
    api = Pipeline(limit("wrongtype", burst=10), store=client)
    assert outcomes(api, 5) == ["ok"] * 5  # the local fallback decides each call
    s = api.stats()["store"]
    assert (s["errors"], s["requests"], s["timeouts"], s["unavailable"]) == (5, 5, 0, 0)
    assert s["storeState"] == "closed", "a deployment mistake is not unavailability"
    assert api.store.failed == 5
    assert api.store_last_error is not None and api.store_last_error.startswith("WRONGTYPE"), api.store_last_error
    fine = Pipeline(limit("fine", burst=10), store=client)
    assert fine.call(ok) == "ok" and fine.store_last_error is None
    assert Pipeline({"rateLimit": {"rate": "10/s"}}).store_last_error is None, "no store, no store error"


def test_a_late_reply_is_dropped_and_counts_as_a_timeout() -> None:
    class Slow:
        sent = 0

        def run(self, request: Any, timeout: float) -> Any:
            self.sent += 1
            time.sleep(timeout + 0.01)
            return [1, 0, 0, 10**9, 0, 0, 1, 0]  # a denial that must not apply

    slow = Slow()
    api = Pipeline(limit("late", timeout="20ms", onUnavailable="allow"), store=slow)
    assert api.call(ok) == "ok"
    s = api.stats()["store"]
    assert (s["timeouts"], s["storeDenied"], s["fallbackAllowed"], slow.sent) == (1, 0, 1, 1)


def test_a_cancelled_call_abandons_its_store_request() -> None:
    class Hang:
        async def run(self, request: Any, timeout: float) -> Any:
            await asyncio.sleep(3600)

    async def main() -> Pipeline:
        api = Pipeline(limit("cancel", timeout="5s"), store=Hang())
        task = asyncio.ensure_future(api.call_async(aok))
        await asyncio.sleep(0.01)
        assert api.stats()["store"]["inFlight"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return api

    s = asyncio.run(main()).stats()
    assert (s["cancelled"], s["inFlight"], s["store"]["inFlight"], s["store"]["timeouts"]) == (1, 0, 0, 0)


def test_an_async_adapter_that_ignores_its_timeout_is_cut_off() -> None:
    class Hang:
        async def run(self, request: Any, timeout: float) -> Any:
            await asyncio.sleep(3600)

    async def main() -> float:
        api = Pipeline(limit("hang", onUnavailable="allow"), store=Hang())
        t = time.monotonic()
        assert await api.call_async(aok) == "ok"
        assert api.stats()["store"]["timeouts"] == 1
        return time.monotonic() - t

    assert asyncio.run(main()) < 0.1, "cut off near its timeout, not after an hour"


def test_a_custom_adapter_answers_store_requests() -> None:
    seen: List[Any] = []

    class Deny:
        def run(self, request: Any, timeout: float) -> Any:
            seen.append((request.script, request.keys, request.args[:2], request.resend_safe, timeout))
            return [1, 0, 0, 250_000_000, 0, 0, 1, 0]  # denied, retry after 250 ms

    api = Pipeline(limit("custom", timeout="40ms"), store=Deny())
    with pytest.raises(RateLimitedError) as e:
        api.call(ok)
    assert e.value.retry_after == pytest.approx(0.25)
    (script, keys, args, resend_safe, timeout), = seen
    assert (script, keys, args, resend_safe) == ("gcra", ("tw:{rl:custom:}:0",), ("1", "0"), False)
    assert 0.03 < timeout <= 0.04


def test_a_single_connection_client_and_loaded_scripts(redis_url: str, admin: Any) -> None:
    c = redis.Redis.from_url(
        redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
    )
    try:
        store = RedisStore(c, timeout=TIMEOUT)
        admin.script_flush()
        assert store.load_scripts() == [s.sha1 for s in scripts()]
        api = Pipeline(limit("single", burst=2), store=store)
        assert api.store is store
        assert outcomes(api, 3) == ["ok", "ok", "limited"]
        assert store.counters() == {"sent": 3, "evals": 0, "timeouts": 0, "unavailable": 0, "failed": 0}
    finally:
        c.close()


# -- the shared breaker (circuitBreaker.share) ----------------------------------------------


def fleet_breaker(key: str, **store: Any) -> Dict[str, Any]:
    """Signal mode: a local trip (2 failures in a row) is a vote; 2 votes open the fleet."""
    return {
        "circuitBreaker": {
            "trip": {"consecutiveFailures": 2},
            "openDuration": "30s",
            "share": {"mode": "signal", "quorum": 2, "flush": "1s"},
        },
        "store": {"key": key, **store},
    }


def fail() -> str:
    raise RuntimeError("down")


def trip(p: Pipeline) -> None:
    for _ in range(2):
        with pytest.raises(RuntimeError, match="down"):
            p.call(fail)
    assert p.state == "open"


def test_a_shared_breaker_opens_the_fleet_on_a_quorum_and_shows_in_stats(redis_url: str, client: Any) -> None:
    # A fake clock that never moves: only the calls' own store requests run (no flush falls
    # due); the fleet's state lives on the store's clock.
    clock = FakeClock()
    other = sync_client(redis_url)
    try:
        a = Pipeline(fleet_breaker("py-fleet"), clock, store=client)
        b = Pipeline(fleet_breaker("py-fleet"), clock, store=other)
        for p in (a, b):
            assert p.call(ok) == "ok"  # the first call syncs with the fleet
        trip(a)
        with pytest.raises(CircuitOpenError):
            a.call(ok)  # carries A's vote: one of two
        s = a.stats()
        assert "store" not in s, "no shared rate limit, no store metrics (as the core serializes them)"
        assert (s["share"]["votes"], s["share"]["fleetState"], s["share"]["failed"]) == (1, "closed", 0)
        assert s["share"]["requests"] == 2 and a.store.sent == 2
        assert b.call(ok) == "ok", "one vote does not open the fleet"
        trip(b)
        with pytest.raises(CircuitOpenError):
            b.call(ok)  # the second vote opens the fleet
        assert (b.stats()["share"]["votes"], b.stats()["share"]["fleetState"]) == (1, "open")
        # A newcomer with a shared rate limit too: the limit admits, the fleet refuses.
        config = {**fleet_breaker("py-fleet"), "rateLimit": {"algorithm": "gcra", "rate": "100/s", "burst": 10}}
        c = Pipeline(config, clock, store=client)
        events: List[Event] = []
        c.on("stateChanged", events.append)
        with pytest.raises(CircuitOpenError) as e:
            c.call(ok)
        assert e.value.retry_after is not None and 25 < e.value.retry_after <= 30
        assert c.state == "open" and [(x.from_state, x.to_state) for x in events] == [("closed", "open")]
        s = c.stats()
        assert (s["share"]["adoptedOpen"], s["share"]["votes"], s["share"]["fleetState"]) == (1, 0, "open")
        assert (s["store"]["requests"], s["store"]["storeAllowed"]) == (1, 1), "both metrics, as the core serializes them"
        assert s["breaker"]["state"] == "open"
        assert "tripwire_" in c.prometheus()
    finally:
        other.close()


def test_the_shared_breakers_store_breaker_emits_store_state_changed(redis_url: str, client: Any) -> None:
    class Flaky:
        """The real store, or an outage."""

        down = True
        sent = 0

        def __init__(self) -> None:
            self.real = RedisStore(client, timeout=TIMEOUT)

        def run(self, request: Any, timeout: float) -> Any:
            self.sent += 1
            return "unavailable" if self.down else self.real.run(request, timeout)

    clock = FakeClock()
    flaky = Flaky()
    # One unavailable reply opens the store breaker for 500 ms, one good reply closes it (the
    # default takes 3 failures in a row).
    store_breaker = {
        "trip": {"consecutiveFailures": 1},
        "openDuration": "500ms",
        "halfOpen": {"permittedCalls": 1, "successThreshold": 1},
    }
    api = Pipeline(fleet_breaker("py-flaky", breaker=store_breaker), clock, store=flaky)
    events: List[Event] = []
    api.on("storeStateChanged", events.append)
    assert api.call(ok) == "ok", "an unreachable fleet leaves the local breaker in charge"
    assert [(e.type, e.from_state, e.to_state) for e in events] == [("storeStateChanged", "closed", "open")]
    share = api.stats()["share"]
    assert (share["failed"], share["requests"], flaky.sent) == (1, 1, 1)
    assert api.store_last_error is None, "unavailability is not an error reply"
    flaky.down = False
    clock.advance(3.0)  # past the store breaker's 500 ms and the next (jittered) 1 s flush
    assert api.call(ok) == "ok"
    assert [e.to_state for e in events] == ["open", "halfOpen", "closed"], events
    assert events[-1].at == pytest.approx(3.0)
    assert (api.stats()["share"]["failed"], flaky.sent) == (1, 2)


def test_the_store_host_clock_hook_is_a_testing_hook_on_the_native_handle() -> None:
    native = _native.Pipeline(json.dumps(fleet_breaker("hook")), 1)
    native._use_store_host_clock(True)
    native._use_store_host_clock(False)
    _native.Pipeline('{"retry": {}}', 1)._use_store_host_clock(True)  # nothing shared: no-op
    assert native.store_last_error() is None
    native.close()
    for use in (lambda: native._use_store_host_clock(True), native.store_last_error):
        with pytest.raises(UsageError) as e:
            use()
        assert e.value.reason == "closed"


# -- the raw layer -------------------------------------------------------------------------


def test_the_raw_shared_limiter_round_trip(client: Any) -> None:
    every = scripts()
    # The shared rate limit's script and the shared breaker's, each named by its own SHA1.
    assert [s.name for s in every] == ["gcra", "breaker"], every
    assert all(s.sha1 == hashlib.sha1(s.source.encode()).hexdigest() for s in every)
    gcra = every[0]
    config = json.dumps(limit("raw", burst=1))
    shared = _native.SharedLimiter(config, 7)
    store = RedisStore(client, timeout=TIMEOUT)
    now = shared.now()
    rid = shared.check("", now)
    assert isinstance(rid, int)
    request = shared.request(rid)
    assert request is not None
    assert (request.sha1, request.source, request.timeout, request.timeout_ns) == (gcra.sha1, gcra.source, 0.025, 25_000_000)
    assert request.keys == ("tw:{rl:raw:}:0",) and request.args[0] == "1" and not request.resend_safe
    assert shared.request_deadline(rid) == now + 25_000_000
    reply = store.run(request)
    assert isinstance(reply, list) and len(reply) == 8 and reply[0] == 0
    assert shared.reply(rid, reply, shared.now()) == (True, 0, None, "store")
    with pytest.raises(UsageError) as e:
        shared.reply(rid, reply, shared.now())
    assert e.value.reason == "unknownRequest"
    # The next check is denied by the store, then answered from the cache.
    rid = shared.check("", shared.now())
    allowed, _, retry_after, source = shared.reply(rid, store.run(shared.request(rid)), shared.now())
    assert (allowed, source) == (False, "store") and retry_after is not None and retry_after > 0
    cached = shared.check("", shared.now())
    assert isinstance(cached, tuple) and cached[0] is False and cached[3] == "cache"
    metrics = json.loads(shared.metrics_json())
    assert (metrics["requests"], metrics["storeAllowed"], metrics["storeDenied"], metrics["cacheDenied"]) == (2, 1, 1, 1)
    assert shared.store_state() == "closed" and len(shared.member) == 16 and shared.last_error() is None


def test_the_raw_limiter_events_abandon_and_replies() -> None:
    shared = _native.SharedLimiter(json.dumps(limit("raw2", onUnavailable="deny")), 1)
    shared.set_listening(True)
    for t in range(3):
        rid = shared.check("", t)
        assert shared.reply(rid, "timeout" if t < 2 else "unavailable", t) == (False, 0, None, "fallback")
    assert shared.check("", 3) == (False, 0, None, "fallback"), "the store breaker is open: no request"
    assert shared.take_events() == [("storeStateChanged", 2, "closed", "open")]
    # A request whose caller went away: forgotten, its reply is an unknown id.
    shared2 = _native.SharedLimiter(json.dumps(limit("raw3")), 1)
    rid = shared2.check("", 0)
    shared2.abandon(rid, 1)
    assert shared2.request(rid) is None and json.loads(shared2.metrics_json())["inFlight"] == 0
    with pytest.raises(UsageError):
        shared2.reply(rid, [0, 0, 0, 0, 0, 0, 1, 0], 2)
    # ("failed", message) and "noScript" are errors: the fallback decides, the store stays.
    rid = shared2.check("", 3)
    assert shared2.reply(rid, ("failed", "NOPERM this user has no permissions"), 3)[3] == "fallback"
    assert shared2.last_error() == "NOPERM this user has no permissions"
    rid = shared2.check("", 4)
    assert shared2.reply(rid, "noScript", 4)[3] == "fallback"
    assert json.loads(shared2.metrics_json())["errors"] == 2 and shared2.store_state() == "closed"
    shared2.close()
    with pytest.raises(UsageError, match="closed"):
        shared2.check("", 5)


# -- bad input -----------------------------------------------------------------------------


def test_store_config_errors_name_their_fields() -> None:
    with pytest.raises(ConfigError) as e:
        Pipeline(limit("k", timeout="0ms"))
    assert str(e.value).startswith("store.timeout: must be > 0")
    with pytest.raises(ConfigError) as e:
        Pipeline({"rateLimit": {"rate": "10/s"}, "store": {"key": "", "onUnavailable": "panic"}})
    paths = [p for p, _ in e.value.issues]
    assert "store.onUnavailable" in paths[0]
    with pytest.raises(ConfigError) as e:
        Pipeline({"rateLimit": {"rate": "10/s", "algorithm": "tokenBucket"}, "store": {"key": "k"}})
    assert e.value.issues[0][0] == "rateLimit.algorithm" and "gcra" in e.value.issues[0][1]
    with pytest.raises(ConfigError) as e:
        _native.SharedLimiter(json.dumps(limit("k", expectedInstances=0)), 0)
    assert str(e.value).startswith("store.expectedInstances: must be >= 1")
    with pytest.raises(ConfigError, match="store.timeout"):
        tripwire.validate(limit("k", timeout="2m"), "sharedRateLimit")
    with pytest.raises(ConfigError, match="key: must not be empty"):
        tripwire.validate({"key": ""}, "store")


def test_a_store_needs_a_store_section() -> None:
    with pytest.raises(ConfigError) as e:
        Pipeline({"rateLimit": {"rate": "10/s"}}, store=object())
    assert e.value.issues == [("store", 'a store client was given, but the config has no "store" section')]


@pytest.mark.parametrize("store", ["redis://127.0.0.1:6379/", 42, object(), RedisStore])
def test_a_non_client_store_is_a_type_error(store: Any) -> None:
    with pytest.raises(TypeError, match=r"store: must be a redis\.Redis or redis\.asyncio\.Redis client"):
        Pipeline(limit("k"), store=store)


def test_a_client_that_would_retry_is_refused_naming_the_setting(redis_url: str) -> None:
    clients = [
        redis.Redis.from_url(redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 3)),
        redis.Redis(socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT),  # redis-py's default (8.1: 10)
        redis.Redis(socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=None, retry_on_error=[ConnectionError]),
    ]
    try:
        for c, times in zip(clients, [r"up to 3 times", r"up to \d+ times", r"up to 1 time "]):
            with pytest.raises(ValueError, match="retry=Retry\\(NoBackoff\\(\\), 0\\)") as e:
                Pipeline(limit("k"), store=c)
            assert re.search(times, str(e.value)) and "`retry`" in str(e.value)
    finally:
        for c in clients:
            c.close()

    async def main() -> str:
        c = redis.asyncio.Redis.from_url(redis_url, retry=AsyncRetry(NoBackoff(), 2))
        try:
            with pytest.raises(ValueError, match=r"up to 2 times") as e:
                Pipeline(limit("k"), store=c)
            return str(e.value)
        finally:
            await c.aclose()

    assert "from redis.asyncio.retry import Retry" in asyncio.run(main())


def test_a_sync_client_must_not_block_longer_than_the_store_timeout(redis_url: str) -> None:
    slow_read = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 0))
    slow_connect = redis.Redis.from_url(redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
    unbounded = redis.Redis.from_url(redis_url, socket_timeout=None, socket_connect_timeout=None, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(ValueError, match=r"socket_timeout is 5 s, longer than the store timeout \(0\.025 s\)"):
            Pipeline(limit("k"), store=slow_read)
        with pytest.raises(ValueError, match="socket_connect_timeout is 2 s"):
            Pipeline(limit("k"), store=slow_connect)
        with pytest.raises(ValueError, match=r"socket_timeout is None \(no limit\)"):
            Pipeline(limit("k"), store=unbounded)
        # A longer store timeout fits; reconfiguring to a shorter one is refused and changes nothing.
        api = Pipeline(limit("k", timeout="2s"), store=slow_connect)
        with pytest.raises(ValueError, match="socket_connect_timeout"):
            api.reconfigure(limit("k", timeout="25ms"))
        assert api._native.store_timeout() == 2_000_000_000
    finally:
        for c in (slow_read, slow_connect, unbounded):
            c.close()


def test_a_reply_of_the_wrong_shape_is_a_type_error_and_consumes_nothing() -> None:
    shared = _native.SharedLimiter(json.dumps(limit("shape")), 0)
    rid = shared.check("", 0)
    for bad, what in [("nope", 'the string "nope"'), ([1, "x"], "list"), (None, "NoneType"), (("failed",), "tuple")]:
        with pytest.raises(TypeError, match="reply: must be a sequence of integers") as e:
            shared.reply(rid, bad, 1)
        assert what in str(e.value)
    assert shared.reply(rid, [0, 0, 0, 0, 0, 0, 1, 0], 1) == (True, 0, None, "store")
