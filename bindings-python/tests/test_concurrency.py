"""One pipeline shared by many threads, and many asyncio tasks: exact counts, no leaked slot."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Dict, List

import pytest

import tripwire
from tripwire import BulkheadFullError, Pipeline, QueueTimeoutError, RateLimiter

THREADS = 8
CALLS_PER_THREAD = 400


def test_eight_threads_share_one_pipeline_with_exact_counts() -> None:
    p = Pipeline({
        "bulkhead": {"maxConcurrent": 3, "maxQueue": 2, "maxWait": "50ms"},
        "circuitBreaker": {"trip": {"consecutiveFailures": 1000000}},
        "retry": {"maxRetries": 1, "backoff": {"base": "1ms", "jitter": "none"}},
    })
    lock = threading.Lock()
    active = 0
    peak = 0
    counts: Dict[str, int] = {"ok": 0, "full": 0, "queueTimeout": 0, "other": 0}
    events: List[str] = []
    p.on("*", lambda e: events.append(e.type))

    def work(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        if i % 7 == 0:
            time.sleep(0.0005)  # a slow call now and then, so that the queue fills
        with lock:
            active -= 1
        if i % 50 == 0:
            raise ConnectionError("transient")  # retried once, then it passes or exhausts
        return i

    def worker(n: int) -> None:
        for i in range(CALLS_PER_THREAD):
            try:
                p.call(work, i * THREADS + n)
                key = "ok"
            except BulkheadFullError:
                key = "full"
            except QueueTimeoutError:
                key = "queueTimeout"
            except Exception:  # noqa: BLE001 - retries exhausted on the i % 50 calls
                key = "other"
            with lock:
                counts[key] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"

    total = THREADS * CALLS_PER_THREAD
    assert sum(counts.values()) == total
    s = p.stats()
    assert s["calls"] == total
    assert s["succeeded"] == counts["ok"]
    assert s["failed"]["bulkheadFull"] == counts["full"]
    assert s["failed"]["queueTimeout"] == counts["queueTimeout"]
    assert s["failed"]["retriesExhausted"] + s["failed"]["failure"] == counts["other"]
    # admitted + rejected = calls; nothing is left holding a slot or waiting.
    bh = s["bulkhead"]
    assert bh["admitted"] + bh["rejectedFull"] + bh["queueTimeouts"] == total
    assert bh["admitted"] == counts["ok"] + counts["other"]
    assert (s["inFlight"], bh["inFlight"], bh["queueDepth"]) == (0, 0, 0)
    assert s["breaker"]["inFlight"] == 0
    assert peak <= 3
    assert counts["ok"] > 0
    assert events.count("queued") == bh["queued"]


def test_eight_threads_on_one_limiter_admit_exactly_the_burst() -> None:
    limiter = RateLimiter({"rate": "1/h", "burst": 1000})
    allowed = [0] * THREADS

    def worker(n: int) -> None:
        for _ in range(500):
            if limiter.check():
                allowed[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(allowed) == 1000
    m = limiter.stats()
    assert m["allowed"] + m["denied"] == THREADS * 500


def test_threads_waiting_in_the_queue_block_instead_of_spinning() -> None:
    p = Pipeline({"bulkhead": {"maxConcurrent": 1, "maxQueue": 8}})
    gate = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(5)

    holder = threading.Thread(target=p.call, args=(hold,))
    holder.start()
    assert started.wait(5)
    waiters = [threading.Thread(target=p.call, args=(lambda: None,)) for _ in range(4)]
    for t in waiters:
        t.start()
    deadline = time.monotonic() + 5
    while p.stats()["bulkhead"]["queueDepth"] < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    cpu0 = time.process_time()
    time.sleep(0.2)
    cpu = time.process_time() - cpu0
    gate.set()
    holder.join(5)
    for t in waiters:
        t.join(5)
    assert cpu < 0.1, f"parked threads burned {cpu:.3f}s of CPU in 0.2s"
    assert p.stats()["succeeded"] == 5


def test_ten_thousand_tasks_through_one_pipeline() -> None:
    n = 10_000
    p = Pipeline({
        "bulkhead": {"maxConcurrent": 64, "maxQueue": n},
        "circuitBreaker": {"trip": {"consecutiveFailures": 1000000}},
        "timeout": {"perAttempt": "5s"},
    })
    active = 0
    peak = 0

    async def work(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1
        return i

    async def main() -> List[Any]:
        return await asyncio.gather(*(p.call_async(work, i) for i in range(n)))

    t0 = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - t0
    assert results == list(range(n))
    assert peak == 64
    s = p.stats()
    assert (s["calls"], s["succeeded"], s["inFlight"]) == (n, n, 0)
    assert s["bulkhead"]["queueDepth"] == 0 and s["bulkhead"]["inFlight"] == 0
    assert elapsed < 60


def test_a_thousand_concurrent_timeouts_settle_and_count() -> None:
    n = 1000
    p = Pipeline({"timeout": {"perAttempt": "20ms"}})
    cleaned = 0

    async def slow() -> None:
        nonlocal cleaned
        try:
            await asyncio.sleep(5)
        finally:
            cleaned += 1

    async def main() -> List[Any]:
        return await asyncio.gather(*(p.call_async(slow) for _ in range(n)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, tripwire.TimeoutError) for r in results)
    assert cleaned == n
    s = p.stats()
    assert s["failed"]["timeout"] == n and s["inFlight"] == 0


def test_threads_and_asyncio_share_one_bulkhead() -> None:
    p = Pipeline({"bulkhead": {"maxConcurrent": 2, "maxQueue": 1000}})
    done: List[str] = []

    def sync_work() -> None:
        time.sleep(0.001)
        done.append("t")

    async def async_work() -> None:
        await asyncio.sleep(0.001)
        done.append("a")

    def thread_main() -> None:
        for _ in range(50):
            p.call(sync_work)

    async def loop_main() -> None:
        await asyncio.gather(*(p.call_async(async_work) for _ in range(100)))

    threads = [threading.Thread(target=thread_main) for _ in range(2)]
    for t in threads:
        t.start()
    asyncio.run(loop_main())
    for t in threads:
        t.join(30)
    assert done.count("t") == 100 and done.count("a") == 100
    bh = p.stats()["bulkhead"]
    assert (bh["inFlight"], bh["queueDepth"], bh["admitted"]) == (0, 0, 200)


@pytest.mark.parametrize("n", [3])
def test_listener_calling_back_from_many_threads_does_not_deadlock(n: int) -> None:
    p = Pipeline({"circuitBreaker": {"trip": {"consecutiveFailures": 1}, "openDuration": "1ms"}})
    seen: List[Any] = []
    p.on("stateChanged", lambda e: seen.append((e.to_state, p.stats()["calls"], p.state)))

    def worker() -> None:
        for _ in range(200):
            try:
                p.call(lambda: (_ for _ in ()).throw(ConnectionError("x")))
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.0001)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert seen and p.stats()["calls"] == n * 200
