"""Round trip per shared rate-limit decision through the redis-py adapters: one process, one
caller, 10^4 decisions each, against the Redis at $TRIPWIRE_REDIS_URL. Prints the median
and p99 beside a bare ``PING`` on the same client (the network floor); it is not a test.

    source scripts/ci/redis.sh; redis_start
    .venv/bin/python bindings-python/bench/store.py [--decisions 10000]

Scenarios: the raw layer (``SharedLimiter.check`` → ``RedisStore.run`` → ``reply``),
``Pipeline.call`` with a sync client, and ``await Pipeline.call_async`` with an asyncio
client. The limit is high enough that every decision is the store's admission.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from typing import Any, Callable, List

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

import tripwire
from tripwire import _native
from tripwire.redis_store import RedisStore

CONFIG = {"rateLimit": {"algorithm": "gcra", "rate": "1000000/s", "burst": 1000000}, "store": {"key": "bench"}}


def summary(name: str, samples: List[int]) -> str:
    samples.sort()
    p50 = statistics.median(samples) / 1e3
    p99 = samples[int(len(samples) * 0.99) - 1] / 1e3
    return f"{name:<44} median {p50:7.1f} µs   p99 {p99:7.1f} µs"


def timed(fn: Callable[[], Any], n: int) -> List[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        fn()
        out.append(clock() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=10_000)
    n = ap.parse_args().decisions
    url = os.environ.get("TRIPWIRE_REDIS_URL", "redis://127.0.0.1:6379/")
    client = redis.Redis.from_url(url, socket_timeout=0.025, socket_connect_timeout=0.025, retry=Retry(NoBackoff(), 0))
    client.flushall()
    print(f"tripwire {tripwire.__version__}, redis-py {redis.__version__}, Python {platform.python_version()}, {n} decisions each")

    warm = max(n // 10, 100)
    timed(client.ping, warm)
    print(summary("PING (redis-py, the floor)", timed(client.ping, n)))

    shared = _native.SharedLimiter(json.dumps(CONFIG), 1)
    store = RedisStore(client, timeout=0.025)
    admitted = []

    def raw() -> None:
        now = shared.now()
        r = shared.check("", now)
        if isinstance(r, tuple):
            admitted.append(r[0])
            return
        request = shared.request(r)
        admitted.append(shared.reply(r, store.run(request), shared.now())[0])

    timed(raw, warm)
    samples = timed(raw, n)
    assert all(admitted) and store.timeouts == 0, "every decision must be the store's admission"
    print(summary("raw: check + RedisStore.run + reply", samples))

    api = tripwire.Pipeline(CONFIG, store=client)

    def work() -> int:
        return 1

    timed(lambda: api.call(work), warm)
    print(summary("Pipeline.call (sync redis.Redis)", timed(lambda: api.call(work), n)))
    assert api.stats()["store"]["storeAllowed"] == warm + n

    async def run_async() -> List[int]:
        aclient = redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0))
        try:
            apipe = tripwire.Pipeline(CONFIG, store=aclient)

            async def awork() -> int:
                return 1

            clock = time.perf_counter_ns
            out = []
            for i in range(warm + n):
                t = clock()
                await apipe.call_async(awork)
                if i >= warm:
                    out.append(clock() - t)
            pings = []
            for _ in range(n):
                t = clock()
                await aclient.ping()
                pings.append(clock() - t)
            print(summary("PING (redis.asyncio, the floor)", pings))
            return out
        finally:
            await aclient.aclose()

    print(summary("await Pipeline.call_async (redis.asyncio)", asyncio.run(run_async())))
    client.close()


if __name__ == "__main__":
    main()
