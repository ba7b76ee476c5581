"""tripwire quick start (the README's Python section is cut from this file; CI runs it and
checks it with mypy --strict)."""

# --8<-- [start:quickstart]
from __future__ import annotations

import asyncio
import random

import tripwire
from tripwire import CircuitBreaker, HealthChecker, Pipeline, RateLimiter

# One pipeline: rate limit -> breaker -> retry (exponential backoff, jitter) -> timeout.
api = Pipeline(
    {
        "rateLimit": {"rate": "100/s", "burst": 20},
        "circuitBreaker": {"trip": {"consecutiveFailures": 5}, "openDuration": "30s"},
        "retry": {"maxRetries": 3, "backoff": {"type": "exponential", "base": "10ms", "max": "1s"}},
        "timeout": {"perAttempt": "2s", "overall": "5s"},
    },
    fallback=lambda error: {"price": None, "stale": True},  # when everything else fails
)


@api
def get_price(item: str) -> dict[str, object]:
    if random.random() < 0.3:
        raise ConnectionError("flaky network")  # retryable, as are 5xx and 429
    return {"item": item, "price": 42}


@api
async def get_price_async(item: str) -> dict[str, object]:
    await asyncio.sleep(0.001)  # cancelled at the per-attempt timeout
    return {"item": item, "price": 42}


api.on("stateChanged", lambda e: print(f"breaker {e.from_state} -> {e.to_state}"))

breaker = CircuitBreaker({"trip": {"consecutiveFailures": 3}})
limiter = RateLimiter({"rate": "5/s"})


def main() -> None:
    print(get_price("book"))
    print(asyncio.run(get_price_async("pen")))

    with breaker:  # one protected block
        pass
    try:
        breaker.force_open()
        with breaker:
            pass
    except tripwire.CircuitOpenError as e:
        print(e.code, e.retry_after)  # "circuitOpen None": forced open has no end
    assert breaker.state == "forcedOpen"

    decision = limiter.check()
    print("allowed" if decision.allowed else f"wait {decision.retry_after}s")

    health = HealthChecker()
    health.register("db", lambda: True, timeout=1.0)
    health.add_breaker("prices", breaker)
    print(health.check()["status"])  # degraded: a breaker is open
    print(api.stats()["succeeded"], "calls succeeded")
# --8<-- [end:quickstart]


if __name__ == "__main__":
    main()
