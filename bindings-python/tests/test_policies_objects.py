"""CircuitBreaker, RateLimiter, KeyedRateLimiter and Bulkhead as a user writes them."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, List

import pytest

import tripwire
from tripwire import (
    BreakerState,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    KeyedRateLimiter,
    QueueTimeoutError,
    RateLimitedError,
    RateLimiter,
)
from tripwire.testing import FakeClock


def boom() -> None:
    raise ValueError("boom")


# -- CircuitBreaker ----------------------------------------------------------------------------


def test_breaker_decorator_trips_and_rejects() -> None:
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 3}, "openDuration": "30s"})

    @breaker
    def call(fail: bool) -> str:
        if fail:
            raise ConnectionError("down")
        return "ok"

    assert call(False) == "ok"
    for _ in range(3):
        with pytest.raises(ConnectionError):
            call(True)
    assert breaker.state == "open"
    assert breaker.state == BreakerState.OPEN
    assert str(breaker.state) == "open"
    with pytest.raises(CircuitOpenError) as info:
        call(False)
    assert info.value.code == "circuitOpen"
    assert 29 < info.value.retry_after <= 30  # type: ignore[operator]


def test_breaker_with_statement_counts_the_block() -> None:
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 2}})
    with breaker:
        pass
    for _ in range(2):
        with pytest.raises(KeyError):
            with breaker:
                raise KeyError("k")
    with pytest.raises(CircuitOpenError):
        with breaker:
            pytest.fail("the block must not run while open")
    s = breaker.stats()["breaker"]
    assert (s["successes"], s["failures"], s["rejected"]) == (1, 2, 1)


def test_breaker_async_with_and_async_decorator() -> None:
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 1}})

    async def main() -> None:
        async with breaker:
            await asyncio.sleep(0)
        with pytest.raises(ValueError):
            async with breaker:
                raise ValueError("x")
        assert breaker.state == "open"

        @breaker
        async def f() -> int:
            return 1

        with pytest.raises(CircuitOpenError):
            await f()

    asyncio.run(main())


def test_nested_with_blocks_on_one_breaker_pair_their_calls() -> None:
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 5}})
    with breaker:
        with pytest.raises(ValueError):
            with breaker:
                raise ValueError("inner")
    m = breaker.stats()["breaker"]
    assert (m["successes"], m["failures"], m["inFlight"]) == (1, 1, 0)


def test_breaker_half_open_on_a_fake_clock() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 1}, "openDuration": "5s", "halfOpen": {"permittedCalls": 1, "successThreshold": 2}}, clock=clock)
    with pytest.raises(ValueError):
        breaker.call(boom)
    clock.advance(5)
    assert breaker.call(lambda: 1) == 1
    assert breaker.state == "halfOpen"
    assert breaker.call(lambda: 2) == 2
    assert breaker.state == "closed"


def test_breaker_manual_controls_and_snapshot() -> None:
    clock = FakeClock(100)
    breaker = CircuitBreaker({}, clock=clock)
    breaker.force_open()
    assert breaker.state == "forcedOpen"
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    breaker.disable()
    assert breaker.state == "disabled"
    breaker.reset()
    assert breaker.state == "closed"
    breaker.force_open()
    snap = breaker.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    other = CircuitBreaker({}, clock=clock)
    other.restore(snap)
    assert other.state == "forcedOpen"
    with pytest.raises(tripwire.ConfigError) as info:
        other.restore({"state": "sideways"})
    assert info.value.path.startswith("snapshot")


def test_breaker_ignore_on() -> None:
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 1}}, ignore_on=KeyError)
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])
    assert breaker.state == "closed"


# -- RateLimiter -------------------------------------------------------------------------------


def test_limiter_check_allows_the_burst_then_denies_with_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"rate": "10/s", "burst": 2}, clock=clock)
    assert limiter.check().allowed and limiter.check().allowed
    d = limiter.check()
    assert not d.allowed and not d
    assert d.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert limiter.check(cost=1)
    assert limiter.stats()["denied"] == 1


def test_limiter_decorator_raises_rate_limited_and_max_wait_sleeps() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"rate": "1/s", "burst": 1}, clock=clock)

    @limiter
    def ping() -> str:
        return "pong"

    assert ping() == "pong"
    with pytest.raises(RateLimitedError) as info:
        ping()
    assert info.value.retry_after == pytest.approx(1.0)
    waiting = RateLimiter({"rate": "1/s", "burst": 1, "maxWait": "2s"}, clock=clock)
    waiting.acquire()
    waiting.acquire()  # reserved: sleeps one second on the clock
    assert clock.sleeps == [pytest.approx(1.0)]


def test_limiter_list_of_limits_all_must_pass_and_events() -> None:
    limiter = RateLimiter([{"rate": "100/s"}, {"rate": "2/m", "burst": 2}], clock=FakeClock())
    rejected: List[tripwire.Event] = []
    limiter.on("rejected", rejected.append)
    assert [bool(limiter.check()) for _ in range(3)] == [True, True, False]
    assert [e.reason for e in rejected] == ["rateLimited"]
    assert rejected[0].retry_after == pytest.approx(30.0)


def test_limiter_async_acquire() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"rate": "1/s", "burst": 1, "maxWait": "1s"}, clock=clock)

    @limiter
    async def f() -> int:
        return 1

    async def main() -> List[int]:
        return [await f(), await f()]

    assert asyncio.run(main()) == [1, 1]
    assert clock.sleeps == [pytest.approx(1.0)]


def test_keyed_limiter_limits_each_key() -> None:
    limiter = KeyedRateLimiter({"limit": {"rate": "1/m", "burst": 1}, "maxKeys": 100}, clock=FakeClock())
    assert limiter.check("alice") and limiter.check("bob")
    assert not limiter.check("alice")
    assert len(limiter) == 2


# -- Bulkhead ----------------------------------------------------------------------------------


def test_bulkhead_blocks_threads_in_fifo_and_rejects_when_full() -> None:
    bulkhead = Bulkhead({"maxConcurrent": 1, "maxQueue": 1})
    release = threading.Event()
    entered = threading.Event()
    order: List[str] = []

    def holder() -> None:
        entered.set()
        release.wait(5)
        order.append("holder")

    def waiter() -> None:
        order.append("waiter")

    t1 = threading.Thread(target=bulkhead.call, args=(holder,))
    t1.start()
    assert entered.wait(5)
    t2 = threading.Thread(target=bulkhead.call, args=(waiter,))
    t2.start()
    deadline = time.monotonic() + 5
    while bulkhead.queued != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert bulkhead.queued == 1
    with pytest.raises(BulkheadFullError):
        bulkhead.call(lambda: None)
    release.set()
    t1.join(5)
    t2.join(5)
    assert order == ["holder", "waiter"]
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_bulkhead_queue_timeout() -> None:
    bulkhead = Bulkhead({"maxConcurrent": 1, "maxQueue": 5, "maxWait": "30ms"})
    with bulkhead:
        t0 = time.monotonic()
        with pytest.raises(QueueTimeoutError):
            bulkhead.call(lambda: None)
        assert time.monotonic() - t0 >= 0.025
    assert bulkhead.call(lambda: "free") == "free"


def test_bulkhead_async_waiters_await_their_turn() -> None:
    bulkhead = Bulkhead({"maxConcurrent": 2, "maxQueue": 100})
    active = 0
    peak = 0

    async def work(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        active -= 1
        return i

    async def main() -> List[int]:
        return await asyncio.gather(*(bulkhead.call_async(work, i) for i in range(20)))

    assert asyncio.run(main()) == list(range(20))
    assert peak == 2
    s = bulkhead.stats()["bulkhead"]
    assert (s["inFlight"], s["queueDepth"], s["admitted"]) == (0, 0, 20)


def test_bulkhead_async_with() -> None:
    bulkhead = Bulkhead({"maxConcurrent": 1, "maxQueue": 0})

    async def main() -> None:
        async with bulkhead:
            with pytest.raises(BulkheadFullError):
                async with bulkhead:
                    pass
        async with bulkhead:
            pass

    asyncio.run(main())
    assert bulkhead.in_flight == 0


def test_bulkhead_queue_wait_on_a_fake_clock_times_out() -> None:
    clock = FakeClock()
    bulkhead = Bulkhead({"maxConcurrent": 1, "maxQueue": 1, "maxWait": "20ms"}, clock=clock)
    with bulkhead:
        with pytest.raises(QueueTimeoutError):
            bulkhead.call(lambda: None)
    assert clock.monotonic() == pytest.approx(0.02)


def test_closing_wakes_waiters_with_a_usage_error() -> None:
    bulkhead = Bulkhead({"maxConcurrent": 1, "maxQueue": 1})
    errors: List[BaseException] = []

    def wait_in_queue() -> None:
        try:
            bulkhead.call(lambda: None)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    bulkhead.__enter__()
    t = threading.Thread(target=wait_in_queue)
    t.start()
    deadline = time.monotonic() + 5
    while bulkhead.queued != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    bulkhead.close()
    t.join(5)
    assert not t.is_alive()
    assert isinstance(errors[0], tripwire.UsageError) and errors[0].reason == "closed"


def test_objects_accept_any_clock_like_object() -> None:
    class Clock:
        def __init__(self) -> None:
            self.t = 1000.0

        def monotonic(self) -> float:
            return self.t

        def sleep(self, s: float) -> None:
            self.t += s

        async def asleep(self, s: float) -> None:
            self.t += s

    c = Clock()
    p = tripwire.Pipeline({"retry": {"maxRetries": 1, "backoff": {"base": "2s", "jitter": "none"}}}, clock=c)
    n: List[int] = []

    def f() -> Any:
        n.append(1)
        if len(n) == 1:
            raise ConnectionError("x")
        return "ok"

    assert p.call(f) == "ok" and c.t == 1002.0
