"""Pipeline as a user writes it: decorators, call/call_async, retries, timeouts, fallbacks,
Retry-After, predicates, events, stats."""

from __future__ import annotations

import asyncio
import builtins
import functools
import threading
from typing import Any, List

import pytest

import tripwire
from tripwire import (
    BudgetExhaustedError,
    CircuitOpenError,
    DeadlineExceededError,
    Pipeline,
    RateLimitedError,
    RetriesExhaustedError,
    TripwireError,
)
from tripwire.testing import FakeClock


class HTTPError(Exception):
    """A duck-typed HTTP error, as requests/httpx raise them."""

    def __init__(self, status: int, headers: Any = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = type("Response", (), {"status_code": status, "headers": headers or {}})()


def flaky(failures: int, exc: BaseException) -> Any:
    calls: List[int] = []

    def fn(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= failures:
            raise exc
        return ("ok", args, kwargs)

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


RETRY = {"maxRetries": 3, "backoff": {"type": "exponential", "base": "1s", "multiplier": 2, "jitter": "none"}}


# -- decorators ------------------------------------------------------------------------------


def test_decorated_function_returns_its_value_and_keeps_its_metadata() -> None:
    p = Pipeline({"circuitBreaker": {}, "retry": RETRY})

    @p
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        return a + b

    assert add(2, b=3) == 5
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert add.__wrapped__(1, 1) == 2  # type: ignore[attr-defined]
    assert p.stats()["succeeded"] == 1


def test_decorating_a_method_binds_self() -> None:
    p = Pipeline({"retry": RETRY})

    class Client:
        def __init__(self) -> None:
            self.base = 10

        @p
        def get(self, x: int) -> int:
            return self.base + x

    assert Client().get(5) == 15
    assert Client.get.__name__ == "get"


def test_async_decorator_keeps_coroutine_function_and_awaits() -> None:
    p = Pipeline({"circuitBreaker": {}})

    @p
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    import inspect

    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch(21)) == 42


def test_call_and_call_async_pass_arguments() -> None:
    p = Pipeline({"retry": RETRY})
    assert p.call(lambda a, b=1: a + b, 1, b=2) == 3

    async def f(a: int, *, b: int) -> int:
        return a * b

    assert asyncio.run(p.call_async(f, 3, b=4)) == 12


# -- retry -------------------------------------------------------------------------------------


def test_retry_sleeps_the_backoff_on_the_given_clock_then_succeeds() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": RETRY}, clock=clock)
    fn = flaky(2, ConnectionError("reset"))
    assert p.call(fn, 7)[0] == "ok"
    assert len(fn.calls) == 3
    assert clock.sleeps == [1.0, 2.0]
    assert clock.monotonic() == 3.0


def test_retries_exhausted_carries_attempts_and_the_last_error_as_cause() -> None:
    p = Pipeline({"retry": RETRY}, clock=FakeClock())
    err = ConnectionError("down")
    with pytest.raises(RetriesExhaustedError) as info:
        p.call(flaky(99, err))
    assert info.value.attempts == 4
    assert info.value.__cause__ is err
    assert info.value.code == "retriesExhausted"
    assert isinstance(info.value, TripwireError)


def test_a_non_retryable_error_propagates_unchanged_after_one_attempt() -> None:
    p = Pipeline({"retry": RETRY}, clock=FakeClock())
    fn = flaky(99, KeyError("nope"))
    with pytest.raises(KeyError):
        p.call(fn)
    assert len(fn.calls) == 1


def test_default_predicate_retries_5xx_and_429_not_other_4xx() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": RETRY}, clock=clock)
    assert p.call(flaky(1, HTTPError(503)))[0] == "ok"
    assert p.call(flaky(1, HTTPError(429)))[0] == "ok"
    fn = flaky(1, HTTPError(404))
    with pytest.raises(HTTPError):
        p.call(fn)
    assert len(fn.calls) == 1


def test_retry_on_overrides_the_predicate() -> None:
    p = Pipeline({"retry": RETRY}, clock=FakeClock(), retry_on=KeyError)
    assert p.call(flaky(2, KeyError("k")))[0] == "ok"
    fn = flaky(1, ConnectionError("no longer retryable"))
    with pytest.raises(ConnectionError):
        p.call(fn)
    q = Pipeline({"retry": RETRY}, clock=FakeClock(), retry_on=lambda e: "again" in str(e))
    assert q.call(flaky(1, ValueError("try again")))[0] == "ok"


def test_retry_after_attribute_in_seconds_lengthens_the_wait() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": RETRY}, clock=clock)
    e = ConnectionError("busy")
    e.retry_after = 7.5  # type: ignore[attr-defined]
    p.call(flaky(1, e))
    assert clock.sleeps == [7.5]


def test_retry_after_header_on_the_response() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": RETRY}, clock=clock)
    p.call(flaky(1, HTTPError(503, {"Retry-After": "12"})))
    assert clock.sleeps == [12.0]
    # A hint shorter than the backoff does not shorten it.
    clock2 = FakeClock()
    Pipeline({"retry": RETRY}, clock=clock2).call(flaky(1, HTTPError(429, {"Retry-After": "0.25"})))
    assert clock2.sleeps == [1.0]


def test_pushback_holds_back_new_calls_until_the_hint_passes() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": {"maxRetries": 0, "pushback": "pipeline"}}, clock=clock)
    with pytest.raises(RetriesExhaustedError):
        p.call(flaky(1, HTTPError(503, {"Retry-After": "5"})))
    with pytest.raises(RateLimitedError) as info:
        p.call(lambda: "never")
    assert info.value.retry_after == pytest.approx(5.0)
    clock.advance(5)
    assert p.call(lambda: "after") == "after"


def test_budget_refuses_retries_when_spent() -> None:
    p = Pipeline(
        {"retry": {"maxRetries": 5, "backoff": {"base": "1ms", "jitter": "none"}, "budget": {"maxTokens": 4, "tokenRatio": 0.1}}},
        clock=FakeClock(),
    )
    with pytest.raises(BudgetExhaustedError) as info:
        p.call(flaky(99, ConnectionError("x")))
    assert isinstance(info.value.__cause__, ConnectionError)
    assert p.stats()["budgetTokens"] <= 2


def test_async_retry_awaits_the_clock() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": RETRY}, clock=clock)

    @p
    async def fetch() -> str:
        fetch.n += 1  # type: ignore[attr-defined]
        if fetch.n < 3:  # type: ignore[attr-defined]
            raise ConnectionError("again")
        return "done"

    fetch.n = 0  # type: ignore[attr-defined]
    assert asyncio.run(fetch()) == "done"
    assert clock.sleeps == [1.0, 2.0]


# -- timeouts ----------------------------------------------------------------------------------


def test_sync_timeout_is_checked_when_the_function_returns() -> None:
    clock = FakeClock()
    p = Pipeline({"timeout": {"perAttempt": "1s"}}, clock=clock)
    with pytest.raises(tripwire.TimeoutError) as info:
        p.call(lambda: clock.sleep(2) or "late")
    assert isinstance(info.value, builtins.TimeoutError)
    assert info.value.code == "timeout"
    assert p.call(lambda: clock.sleep(0.5) or "in time") == "in time"


def test_a_timed_out_attempt_is_retried_and_the_cause_is_a_timeout() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": {"maxRetries": 1, "backoff": {"base": "1ms", "jitter": "none"}}, "timeout": {"perAttempt": "1s"}}, clock=clock)
    with pytest.raises(RetriesExhaustedError) as info:
        p.call(lambda: clock.sleep(5))
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, tripwire.TimeoutError)


def test_overall_timeout_gives_deadline_exceeded() -> None:
    clock = FakeClock()
    p = Pipeline({"retry": {"maxRetries": 5, "backoff": {"base": "1s", "jitter": "none"}}, "timeout": {"perAttempt": "10s", "overall": "2500ms"}}, clock=clock)
    with pytest.raises(DeadlineExceededError) as info:
        p.call(flaky(99, ConnectionError("x")))
    assert isinstance(info.value, builtins.TimeoutError)
    assert clock.monotonic() <= 2.5


def test_asyncio_timeout_cancels_the_attempt_and_waits_for_it() -> None:
    p = Pipeline({"timeout": {"perAttempt": "30ms"}})
    seen: List[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # cleanup that the call must wait for
            seen.append("cleaned up")
            raise

    async def main() -> None:
        with pytest.raises(tripwire.TimeoutError):
            await p.call_async(slow)
        assert seen == ["cleaned up"]  # settled before the call returned

    asyncio.run(main())


def test_asyncio_timeout_on_a_fake_clock() -> None:
    clock = FakeClock()
    p = Pipeline({"timeout": {"perAttempt": "1s"}, "retry": {"maxRetries": 1, "backoff": {"base": "1s", "jitter": "none"}}}, clock=clock)

    async def slow() -> str:
        await clock.asleep(60)
        return "late"

    async def main() -> None:
        with pytest.raises(RetriesExhaustedError) as info:
            await p.call_async(slow)
        assert isinstance(info.value.__cause__, tripwire.TimeoutError)

    asyncio.run(main())
    assert clock.monotonic() == pytest.approx(3.0)  # 1s attempt, 1s backoff, 1s attempt


def test_asyncio_cancelling_the_caller_cancels_the_call() -> None:
    p = Pipeline({"bulkhead": {"maxConcurrent": 1}, "timeout": {"perAttempt": "10s"}})

    async def main() -> None:
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.sleep(10)

        task = asyncio.ensure_future(p.call_async(hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        s = p.stats()
        assert s["cancelled"] == 1 and s["inFlight"] == 0
        assert s["bulkhead"]["inFlight"] == 0
        assert await p.call_async(asyncio.sleep, 0, "free") == "free"

    asyncio.run(main())


# -- fallback ----------------------------------------------------------------------------------


def test_fallback_value_and_function_receive_the_error() -> None:
    p = Pipeline({"circuitBreaker": {}}, fallback="cached")
    assert p.call(flaky(1, ValueError("x"))) == "cached"
    errors: List[BaseException] = []
    q = Pipeline({"retry": {"maxRetries": 1, "backoff": {"base": "1ms"}}}, clock=FakeClock(), fallback=lambda e: errors.append(e) or "fb")
    assert q.call(flaky(9, ConnectionError("x"))) == "fb"
    assert isinstance(errors[0], RetriesExhaustedError)


def test_fallback_chain_tries_in_order() -> None:
    def cache(e: BaseException) -> Any:
        raise LookupError("cache miss")

    def database(e: BaseException) -> Any:
        return {"price": 10, "source": "database"}

    p = Pipeline({"circuitBreaker": {}}, fallback=[cache, database, {"price": 0}])
    assert p.call(flaky(1, ValueError("price service down"))) == {"price": 10, "source": "database"}
    last = Pipeline({"circuitBreaker": {}}, fallback=[cache])
    with pytest.raises(LookupError):
        last.call(flaky(1, ValueError("x")))


def test_fallback_on_limits_which_failures_use_it() -> None:
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 1}}, "fallback": {"on": ["circuitOpen"]}}, fallback="degraded")
    with pytest.raises(ValueError):
        p.call(flaky(1, ValueError("x")))  # a plain failure is not in `on`
    assert p.call(lambda: "unreached") == "degraded"  # now open


def test_async_fallback_is_awaited() -> None:
    async def fb(e: BaseException) -> str:
        await asyncio.sleep(0)
        return f"fallback for {e.code}"  # type: ignore[attr-defined]

    p = Pipeline({"circuitBreaker": {}}, fallback=fb)
    p.force_open()

    async def f() -> str:
        return "x"

    assert asyncio.run(p.call_async(f)) == "fallback for circuitOpen"


# -- breaker inside a pipeline, events, stats ---------------------------------------------------


def test_breaker_opens_rejects_with_retry_after_and_recovers() -> None:
    clock = FakeClock()
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 2}, "openDuration": "10s", "halfOpen": {"successThreshold": 1}}}, clock=clock)
    for _ in range(2):
        with pytest.raises(ValueError):
            p.call(flaky(1, ValueError("x")))
    assert p.state == "open"
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as info:
        p.call(lambda: 1)
    assert info.value.retry_after == pytest.approx(6.0)
    clock.advance(6)
    assert p.call(lambda: "probe") == "probe"
    assert p.state == tripwire.BreakerState.CLOSED


def test_4xx_is_ignored_by_the_breaker() -> None:
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 2}}})
    for _ in range(5):
        with pytest.raises(HTTPError):
            p.call(flaky(1, HTTPError(400)))
    assert p.state == "closed"
    assert p.stats()["breaker"]["ignored"] == 5


def test_events_reach_listeners_in_order() -> None:
    clock = FakeClock()
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 1}}, "retry": {"maxRetries": 1, "backoff": {"base": "1s", "jitter": "none"}}, "order": ["circuitBreaker", "retry"]}, clock=clock)
    seen: List[tripwire.Event] = []
    p.on("*", seen.append)
    with pytest.raises(RetriesExhaustedError):
        p.call(flaky(9, ConnectionError("x")))
    types = [e.type for e in seen]
    assert types == ["retryScheduled", "gaveUp", "stateChanged"]
    assert seen[0].attempt == 2 and seen[0].delay == 1.0
    assert seen[1].reason == "retriesExhausted" and seen[1].attempts == 2
    assert (seen[2].from_state, seen[2].to_state) == ("closed", "open")
    with pytest.raises(CircuitOpenError):
        p.call(lambda: 1)
    assert seen[-1].type == "rejected" and seen[-1].reason == "circuitOpen"
    assert p.off("*", seen.append)
    n = len(seen)
    with pytest.raises(CircuitOpenError):
        p.call(lambda: 1)
    assert len(seen) == n


def test_a_listener_may_call_back_into_the_pipeline() -> None:
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 1}}})
    states: List[Any] = []

    @p.on("stateChanged")
    def on_change(event: tripwire.Event) -> None:
        states.append(p.state)  # reads under the lock: would deadlock if called with it held
        states.append(p.stats()["breaker"]["state"])
        if event.to_state == "open":
            p.reset()

    done = threading.Event()

    def run() -> None:
        with pytest.raises(ValueError):
            p.call(flaky(1, ValueError("x")))
        done.set()

    t = threading.Thread(target=run)
    t.start()
    t.join(5)
    assert done.is_set(), "a listener calling back into the pipeline deadlocked"
    assert states[:2] == ["open", "open"]
    assert p.state == "closed"


def test_a_raising_listener_is_logged_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 1}}})
    p.on("stateChanged", lambda e: 1 / 0)
    with pytest.raises(ValueError):
        p.call(flaky(1, ValueError("x")))
    assert "listener" in caplog.text and p.state == "open"


def test_unknown_event_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        Pipeline({}).on("stateChange", print)


def test_stats_and_prometheus_come_from_the_core() -> None:
    p = Pipeline({"circuitBreaker": {}, "retry": RETRY}, clock=FakeClock(), name="payments")
    p.call(flaky(1, ConnectionError("x")))
    s = p.stats()
    assert (s["calls"], s["succeeded"], s["attempts"], s["inFlight"]) == (1, 1, 2, 0)
    assert s["retry"]["retries"] == 1
    text = p.prometheus()
    assert 'pipeline="payments"' in text
    assert "# TYPE" in text


def test_snapshot_restore_and_reconfigure() -> None:
    clock = FakeClock()
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 1}, "openDuration": "30s"}}, clock=clock)
    with pytest.raises(ValueError):
        p.call(flaky(1, ValueError("x")))
    snap = p.snapshot()
    assert snap["circuitBreaker"]["state"] == "open"
    q = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 1}, "openDuration": "30s"}}, clock=clock)
    q.restore(snap)
    assert q.state == "open"
    with pytest.raises(tripwire.ConfigError, match="must be >= 1"):
        q.reconfigure({"circuitBreaker": {"trip": {"consecutiveFailures": 0}}})
    assert q.state == "open"  # the old config stays in force
    q.reconfigure({"circuitBreaker": {"trip": {"consecutiveFailures": 3}}})
    assert q.state == "open"  # state that still fits is kept


def test_pipeline_without_policies_just_calls() -> None:
    p = Pipeline({})
    assert p.call(functools.partial(max, 1, 2)) == 2
