"""Bad input gives typed errors naming the field, never a crash."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

import tripwire
from tripwire import (
    CircuitBreaker,
    ClockError,
    ConfigError,
    HealthChecker,
    Pipeline,
    RateLimiter,
    UsageError,
    load_policies,
)
from tripwire import _native


class BrokenClock:
    def __init__(self, value: Any) -> None:
        self.value = value

    def monotonic(self) -> Any:
        return self.value

    def sleep(self, s: float) -> None:
        pass

    async def asleep(self, s: float) -> None:
        pass


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1.0])
def test_a_clock_returning_a_non_instant_raises_clock_error(value: float) -> None:
    p = Pipeline({"circuitBreaker": {}}, clock=BrokenClock(value))
    with pytest.raises(ClockError, match="clock.monotonic"):
        p.call(lambda: 1)
    with pytest.raises(ValueError):  # ClockError is also a ValueError
        RateLimiter({"rate": "1/s"}, clock=BrokenClock(value)).check()
    with pytest.raises(ClockError):
        asyncio.run(p.call_async(asyncio.sleep, 0))


def test_a_clock_returning_a_string_raises_type_error() -> None:
    with pytest.raises(TypeError, match="clock.monotonic"):
        Pipeline({}, clock=BrokenClock("soon")).call(lambda: 1)


def test_a_clock_that_breaks_mid_call_leaves_nothing_held() -> None:
    class Flaky(BrokenClock):
        def monotonic(self) -> Any:
            self.n = getattr(self, "n", 0) + 1
            return 1.0 if self.n != 2 else math.nan

    p = Pipeline({"bulkhead": {"maxConcurrent": 1, "maxQueue": 0}}, clock=Flaky(0))
    with pytest.raises(ClockError):
        p.call(lambda: 1)  # the read after the attempt fails
    s = p.stats()
    assert s["inFlight"] == 0 and s["bulkhead"]["inFlight"] == 0 and s["cancelled"] == 1
    assert p.call(lambda: "free") == "free"


def test_time_going_backwards_is_clamped_not_an_error() -> None:
    from tripwire.testing import FakeClock

    clock = FakeClock(100)
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 1}, "openDuration": "10s"}, clock=clock)
    with pytest.raises(ValueError):
        breaker.call(lambda: (_ for _ in ()).throw(ValueError("x")))
    clock.set(50)  # steps back
    with pytest.raises(tripwire.CircuitOpenError) as info:
        breaker.call(lambda: 1)
    assert info.value.retry_after == pytest.approx(10.0)  # the open period did not shrink


def test_a_clock_missing_methods_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="asleep"):
        Pipeline({}, clock=object())


@pytest.mark.parametrize(
    "config, path",
    [
        ({"retry": {"maxRetries": -1}}, "retry.maxRetries"),
        ({"retry": {"backoff": {"base": "3 parsecs"}}}, "retry.backoff.base"),
        ({"circuitBreaker": {"halfOpen": {"permittedCalls": 0}}}, "circuitBreaker.halfOpen.permittedCalls"),
        ({"circuitBreaker": {"tripp": {}}}, "circuitBreaker"),
        ({"bulkhead": {"maxConcurrent": "ten"}}, "bulkhead.maxConcurrent"),
        ({"timeout": {"perAttempt": math.nan}}, "timeout.perAttempt"),
        ({"rateLimit": {"rate": "fast"}}, "rateLimit"),
        ({"unknownPolicy": {}}, ""),
    ],
)
def test_bad_configs_raise_config_error_with_the_field_path(config: Any, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline(config)
    e = info.value
    assert isinstance(e, ValueError) and e.code == "invalidConfig"
    assert e.path.startswith(path), (e.path, str(e))
    assert e.reason and e.issues


def test_config_error_lists_every_issue() -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline({"retry": {"maxRetries": 1, "backoff": {"multiplier": 0.5}}, "bulkhead": {"maxConcurrent": 0}})
    paths = [p for p, _ in info.value.issues]
    assert any(p.startswith("bulkhead") for p in paths) and any(p.startswith("retry") for p in paths)


@pytest.mark.parametrize("config", [42, None, ["not", "a", "dict"], object()])
def test_a_config_of_the_wrong_type_is_a_type_error(config: Any) -> None:
    with pytest.raises((TypeError, ConfigError)):
        Pipeline(config)


def test_non_json_values_in_a_config_name_their_field() -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline({"retry": {"backoff": {"base": {1, 2}}}})
    assert info.value.path == "retry.backoff.base"
    with pytest.raises(ConfigError) as info2:
        Pipeline({"retry": {1: 2}})
    assert info2.value.path == "retry"


def test_invalid_json_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Pipeline('{"retry": ')


def test_validate_checks_without_building() -> None:
    tripwire.validate({"retry": {}})
    with pytest.raises(ConfigError, match="policies.api"):
        tripwire.validate({"policies": {"api": {"retry": {"maxRetries": -1}}}}, "policyFile")
    with pytest.raises(ValueError, match="target"):
        tripwire.validate({}, "nonsense")


def test_using_a_closed_object_is_a_usage_error() -> None:
    p = Pipeline({"circuitBreaker": {}})
    f = p(lambda: 1)
    p.close()
    assert p.closed
    for action in (lambda: p.call(lambda: 1), f, p.stats, p.prometheus, p.force_open, lambda: p.state):
        with pytest.raises(UsageError) as info:
            action()
        assert info.value.reason == "closed"
    limiter = RateLimiter({"rate": "1/s"})
    limiter.close()
    with pytest.raises(UsageError):
        limiter.check()
    with pytest.raises(UsageError):
        asyncio.run(p.call_async(asyncio.sleep, 0))


def test_stale_call_handles_are_usage_errors() -> None:
    native = _native.Pipeline("{}", 0)
    call, step = native.start(0)
    assert step[0] == _native.STEP_ATTEMPT
    native.finish(call, _native.OUTCOME_SUCCESS, False, None, 1)
    with pytest.raises(UsageError, match="unknown or finished call handle") as info:
        native.poll(call, 2)
    assert info.value.reason == "unknownCall"
    with pytest.raises(UsageError):
        native.report(call, 7, False, None, 2)
    with pytest.raises(UsageError, match="outcome"):
        native.report(native.begin(3), 9, False, None, 3)


def test_breaker_operations_without_a_breaker() -> None:
    p = Pipeline({"retry": {}})
    assert p.state is None and p.snapshot() == {}
    with pytest.raises(UsageError) as info:
        p.force_open()
    assert info.value.reason == "noBreaker"


@pytest.mark.parametrize("cost", [-1, 2**64])
def test_limiter_costs_out_of_range_are_typed(cost: int) -> None:
    with pytest.raises((OverflowError, TypeError, ValueError)):
        RateLimiter({"rate": "1/s"}).check(cost)


def test_wrong_argument_types() -> None:
    with pytest.raises(TypeError):
        RateLimiter({"rate": "1/s"}).check("one")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pipeline({})(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pipeline({}, retry_on=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pipeline({}).on("rejected", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pipeline({"circuitBreaker": {}}).restore("snapshot")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Pipeline({"circuitBreaker": {}}).restore({"bulkhead": {}})


def test_health_registration_errors() -> None:
    checker = HealthChecker()
    with pytest.raises(ConfigError) as info:
        checker.register("db", lambda: True, timeout=0)
    assert info.value.path.startswith("checks.db")
    checker.register("db", lambda: True)
    with pytest.raises(ConfigError, match="already registered"):
        checker.register("db", lambda: True)
    with pytest.raises(TypeError):
        checker.register("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        checker.register("y", lambda: True, timeout=math.inf)


def test_load_policies_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_policies({"policies": {"api": {"circuitBreaker": {"halfOpen": {"permittedCalls": 0}}}}})
    assert info.value.path == "policies.api.circuitBreaker.halfOpen.permittedCalls"
    with pytest.raises(ConfigError):
        load_policies({"policy": {}})
    with pytest.raises(FileNotFoundError):
        load_policies("/nonexistent/policies.json")
    with pytest.raises(KeyError):
        load_policies({"policies": {"a": {}}}, fallbacks={"b": 1})


def test_a_listener_raising_a_base_exception_leaves_no_call_behind() -> None:
    class Stop(BaseException):
        pass

    bulkhead = tripwire.Bulkhead({"maxConcurrent": 1, "maxQueue": 1})

    def stop(event: tripwire.Event) -> None:
        raise Stop()

    bulkhead.on("queued", stop)
    with bulkhead:
        with pytest.raises(Stop):
            bulkhead.call(lambda: None)  # parks, and the listener interrupts
        s = bulkhead.stats()
        assert s["bulkhead"]["queueDepth"] == 0 and s["cancelled"] == 1
    assert bulkhead.off("queued", stop)
    assert bulkhead.call(lambda: "free") == "free"
    assert bulkhead.in_flight == 0
