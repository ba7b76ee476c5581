"""Stress: threads and asyncio tasks at volume through one policy object, with exact counts.

* 8 threads x N calls (``TRIPWIRE_STRESS_N``, default 10^5: CI's figure) through ONE
  pipeline's sync ``call``, with a deterministic mix of outcomes (a retry that passes,
  retries exhausted, a non-retryable error, an error the breaker ignores), a breaker that
  cannot trip and a bulkhead with fewer slots than threads: every counter of ``stats()`` is
  known in advance, and nothing may be left in flight or in the queue.
* 8 threads hammering one RateLimiter on a FakeClock, in phases at fixed instants: each phase
  admits exactly one burst.
* ``TRIPWIRE_STRESS_TASKS`` (default 10^4) asyncio tasks at once through one pipeline whose
  bulkhead is far smaller, with the same mix: exact counts, no slot or queue place leaked;
  then the same with a quarter of the tasks cancelled, running or queued.

Each prints its wall time and calls/s (past pytest's capture) for the record.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, cast

import pytest

from tripwire import Pipeline, RateLimiter, RetriesExhaustedError
from tripwire.testing import FakeClock

THREADS = 8
N = int(os.environ.get("TRIPWIRE_STRESS_N", "100000"))
TASKS = int(os.environ.get("TRIPWIRE_STRESS_TASKS", "10000"))
if N < 1000 or TASKS < 1000:
    raise ValueError(f"TRIPWIRE_STRESS_N and TRIPWIRE_STRESS_TASKS must be >= 1000, got {N} and {TASKS}")
SLOTS = 4  # bulkhead slots for the threads: half as many as threads, so they queue
TASK_SLOTS = 64  # bulkhead slots for the asyncio tasks
MAX_RETRIES = 2
NEVER_TRIPS = {"trip": {"consecutiveFailures": 10**9}}
NO_WAIT = {"type": "constant", "base": "0ms", "jitter": "none"}


class HttpError(Exception):
    """An HTTP error response: a 404 is the caller's fault (the breaker ignores it)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


# The mix, by call number i: (what happens, attempts made, how the call ends).
#   i % 10 == 0   the first attempt raises ConnectionError, the retry passes   2  ok
#   i % 20 == 1   every attempt raises ConnectionError                         3  RetriesExhaustedError
#   i % 20 == 11  ValueError (not retryable)                                   1  ValueError
#   i % 50 == 3   HttpError(404) (ignored by the breaker, not retried)         1  HttpError
#   otherwise     returns i                                                    1  ok
def plan(i: int) -> Tuple[str, int]:
    if i % 10 == 0:
        return "ok", 2
    if i % 20 == 1:
        return "RetriesExhaustedError", MAX_RETRIES + 1
    if i % 20 == 11:
        return "ValueError", 1
    if i % 50 == 3:
        return "HttpError", 1
    return "ok", 1


def attempt(i: int, made: List[int]) -> int:
    """One attempt of call `i` (`made[0]`: attempts so far), as the plan says."""
    made[0] += 1
    if i % 10 == 0 and made[0] == 1:
        raise ConnectionError("transient")
    if i % 20 == 1:
        raise ConnectionError("down")
    if i % 20 == 11:
        raise ValueError("bad request")
    if i % 50 == 3:
        raise HttpError(404)
    return i


def expected(calls_per_worker: int, workers: int) -> Dict[str, Any]:
    """Every counter the mix determines, for `workers` workers making calls 0..n-1 each."""
    ends: Counter[str] = Counter()
    attempts = 0
    for i in range(calls_per_worker):
        end, n = plan(i)
        ends[end] += workers
        attempts += n * workers
    calls = calls_per_worker * workers
    retried_ok = sum(1 for i in range(calls_per_worker) if i % 10 == 0) * workers
    exhausted = ends["RetriesExhaustedError"]
    return {
        "ends": ends,
        "calls": calls,
        "succeeded": ends["ok"],
        "retriesExhausted": exhausted,
        # The function's own error (ValueError, the ignored 404) ends the call as "failure".
        "failure": ends["ValueError"] + ends["HttpError"],
        "attempts": attempts,
        "retries": attempts - calls,
        "successesAfterRetry": retried_ok,
        # Failed attempts the retry saw: all but the ignored ones and the successes.
        "retryFailures": attempts - ends["ok"] - ends["HttpError"],
        "notRetryable": ends["ValueError"],
        "breakerFailures": exhausted + ends["ValueError"],
        "breakerIgnored": ends["HttpError"],
    }


def mixed_pipeline(slots: int, queue: int, **policies: Any) -> Pipeline:
    return Pipeline({
        "bulkhead": {"maxConcurrent": slots, "maxQueue": queue},
        "circuitBreaker": NEVER_TRIPS,
        "retry": {"maxRetries": MAX_RETRIES, "backoff": NO_WAIT},
        **policies,
    })


def check_mix_stats(s: Dict[str, Any], want: Dict[str, Any], slots: int) -> None:
    assert s["calls"] == want["calls"]
    assert s["succeeded"] == want["succeeded"]
    assert s["failed"]["retriesExhausted"] == want["retriesExhausted"]
    assert s["failed"]["failure"] == want["failure"]
    others = {k: v for k, v in s["failed"].items() if k not in ("retriesExhausted", "failure")}
    assert set(others.values()) == {0}, others
    assert s["cancelled"] == 0
    assert s["attempts"] == want["attempts"]
    assert s["inFlight"] == 0
    retry = s["retry"]
    assert retry["retries"] == want["retries"]
    assert retry["successes"] == want["succeeded"]
    assert retry["successesAfterRetry"] == want["successesAfterRetry"]
    assert retry["failures"] == want["retryFailures"]
    assert retry["gaveUpExhausted"] == want["retriesExhausted"]
    assert retry["gaveUpNotRetryable"] == want["notRetryable"]
    breaker = s["breaker"]
    assert breaker["state"] == "closed" and breaker["transitions"] == 0
    assert breaker["admitted"] == want["calls"] and breaker["rejected"] == 0
    assert breaker["successes"] == want["succeeded"]
    assert breaker["failures"] == want["breakerFailures"]
    assert breaker["ignored"] == want["breakerIgnored"]
    assert breaker["inFlight"] == 0
    bh = s["bulkhead"]
    assert bh["admitted"] == want["calls"]
    assert (bh["rejectedFull"], bh["queueTimeouts"], bh["cancelled"], bh["unmatchedReleases"]) == (0, 0, 0, 0)
    assert bh["woken"] == bh["queued"], "every call that queued was woken"
    assert (bh["inFlight"], bh["queueDepth"], bh["maxConcurrent"]) == (0, 0, slots)


def record(capsys: pytest.CaptureFixture[str], what: str, calls: int, seconds: float, extra: str = "") -> None:
    """Print a figure past pytest's capture, for the record."""
    with capsys.disabled():
        print(f"\nstress: {what}: {calls} calls in {seconds:.2f} s ({calls / seconds:,.0f} calls/s){extra}")


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads every 10 us (default 5 ms), so that calls interleave inside the binding."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def test_eight_threads_times_n_calls_through_one_pipeline(busy_switching: None, capsys: pytest.CaptureFixture[str]) -> None:
    p = mixed_pipeline(SLOTS, THREADS)
    lock = threading.Lock()
    active = 0
    peak = 0

    def work(i: int, made: List[int]) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            if i % 16 == 5:
                time.sleep(0)  # give the GIL away while holding a slot: the others queue
            return attempt(i, made)
        finally:
            with lock:
                active -= 1

    ends: List[Counter[str]] = [Counter() for _ in range(THREADS)]
    wrong: List[str] = []
    start = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        mine = ends[t]
        start.wait()
        for i in range(N):
            made = [0]
            try:
                value = p.call(work, i, made)
            except RetriesExhaustedError as e:
                mine["RetriesExhaustedError"] += 1
                if e.attempts != MAX_RETRIES + 1 or not isinstance(e.__cause__, ConnectionError):
                    wrong.append(f"call {i}: {e!r} attempts={e.attempts} cause={e.__cause__!r}")
                continue
            except (ValueError, HttpError) as e:
                mine[type(e).__name__] += 1
                continue
            mine["ok"] += 1
            if value != i or made[0] != plan(i)[1]:
                wrong.append(f"call {i}: {value!r} after {made[0]} attempts")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert wrong == []

    want = expected(N, THREADS)
    assert sum(ends, Counter()) == want["ends"]
    s = p.stats()
    check_mix_stats(s, want, SLOTS)
    assert peak == SLOTS, f"at most {SLOTS} in the function at once, and the threads did fill the slots (peak {peak})"
    assert s["bulkhead"]["queued"] > 0, "the threads did queue"
    record(
        capsys,
        f"{THREADS} threads x {N} sync calls, one pipeline",
        THREADS * N,
        elapsed,
        f"; {s['attempts']} attempts, {s['bulkhead']['queued']} queued",
    )


def test_eight_threads_on_one_limiter_admit_exactly_one_burst_per_instant(busy_switching: None, capsys: pytest.CaptureFixture[str]) -> None:
    # 1000/s with a burst of 125: 0.125 s refills exactly one burst (125,000,000 ns: exact in
    # binary floating point, as every phase's instant is).
    clock = FakeClock()
    limiter = RateLimiter({"rate": "1000/s", "burst": 125}, clock=clock)
    checks = max(1, N // 40)  # per thread and phase
    phases = 40
    allowed = [[0] * phases for _ in range(THREADS)]
    denied = [0] * THREADS
    barrier = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        check = limiter.check
        for phase in range(phases):
            barrier.wait()
            n = 0
            for _ in range(checks):
                if check():
                    n += 1
            allowed[t][phase] = n
            denied[t] += checks - n
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    for phase in range(phases):
        if phase > 0:
            clock.advance(0.125)
        barrier.wait()  # the phase starts at a fixed instant
        barrier.wait()  # every thread is done with it
    for t in threads:
        t.join(60)
    elapsed = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads)

    per_phase = [sum(allowed[t][phase] for t in range(THREADS)) for phase in range(phases)]
    assert per_phase == [125] * phases
    total = THREADS * checks * phases
    m = limiter.stats()
    assert (m["allowed"], m["waited"], m["denied"]) == (125 * phases, 0, total - 125 * phases)
    assert sum(denied) == m["denied"]
    assert limiter.check().allowed is False  # the last phase's burst is spent
    record(capsys, f"{THREADS} threads x {checks * phases} checks, one rate limiter, fake clock", total, elapsed)


def test_ten_thousand_tasks_through_one_pipeline_exact_counts(capsys: pytest.CaptureFixture[str]) -> None:
    p = mixed_pipeline(TASK_SLOTS, TASKS, timeout={"perAttempt": "30s"})
    active = 0
    peak = 0

    async def work(i: int, made: List[int]) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0)  # hold the slot across a loop turn: the others queue
            return attempt(i, made)
        finally:
            active -= 1

    async def one(i: int) -> Tuple[str, Optional[int], int]:
        made = [0]
        try:
            value = await p.call_async(work, i, made)
        except RetriesExhaustedError as e:
            assert e.attempts == MAX_RETRIES + 1 and isinstance(e.__cause__, ConnectionError)
            return "RetriesExhaustedError", None, made[0]
        except (ValueError, HttpError) as e:
            return type(e).__name__, None, made[0]
        return "ok", value, made[0]

    async def main() -> List[Tuple[str, Optional[int], int]]:
        return await asyncio.gather(*(one(i) for i in range(TASKS)))

    t0 = time.perf_counter()
    results = asyncio.run(main())
    elapsed = time.perf_counter() - t0

    assert len(results) == TASKS
    for i, (end, value, made) in enumerate(results):
        assert (end, made) == plan(i), f"task {i}"
        assert value == (i if end == "ok" else None)
    want = expected(TASKS, 1)
    s = p.stats()
    check_mix_stats(s, want, TASK_SLOTS)
    assert peak == TASK_SLOTS
    assert s["bulkhead"]["queued"] == TASKS - TASK_SLOTS, "all but the first wave queued"
    record(capsys, f"{TASKS} concurrent asyncio tasks, one pipeline (bulkhead {TASK_SLOTS})", TASKS, elapsed, f"; {s['attempts']} attempts")


def test_cancelling_a_quarter_of_ten_thousand_tasks_frees_every_slot(capsys: pytest.CaptureFixture[str]) -> None:
    p = Pipeline({
        "bulkhead": {"maxConcurrent": TASK_SLOTS, "maxQueue": TASKS},
        "circuitBreaker": NEVER_TRIPS,
        "timeout": {"perAttempt": "30s"},
    })
    gate: Optional[asyncio.Event] = None
    active = 0
    peak = 0
    ran: set[int] = set()

    async def work(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        ran.add(i)
        try:
            assert gate is not None
            await gate.wait()
            return i
        finally:
            # Clean-up that takes a few loop turns (a cancelled attempt too): the slot is the
            # attempt's until it has finished, so nobody else may start meanwhile.
            for _ in range(4):
                await asyncio.sleep(0)
            active -= 1

    def bulkhead_now() -> Dict[str, Any]:
        return cast(Dict[str, Any], p.stats()["bulkhead"])

    async def settle(pred: Callable[[], bool], what: str) -> None:
        for _ in range(10_000):
            if pred():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"never {what}: {p.stats()['bulkhead']}")

    async def main() -> Tuple[List[Any], List[Any], Dict[str, Any], float]:
        nonlocal gate
        gate = asyncio.Event()
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(p.call_async(work, i)) for i in range(TASKS)]
        # The first TASK_SLOTS run (in order), every other one waits in the queue.
        await settle(lambda: bulkhead_now()["queueDepth"] == TASKS - TASK_SLOTS and active == TASK_SLOTS, "filled")
        assert ran == set(range(TASK_SLOTS))
        victims = [t for i, t in enumerate(tasks) if i % 4 == 0]
        for t in victims:
            t.cancel()
        # Cancelled runners hand their slots on once their attempts have finished; cancelled
        # waiters leave the queue; the slots are full again, with survivors.
        survivors = TASKS - len(victims)

        def refilled() -> bool:
            b = bulkhead_now()
            return b["queueDepth"] == survivors - TASK_SLOTS and b["inFlight"] == TASK_SLOTS and active == TASK_SLOTS

        await settle(refilled, "refilled")
        mid = bulkhead_now()
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.perf_counter() - t0
        # No slot leaked: a full bulkhead's worth of calls is admitted at once again.
        again = asyncio.Event()

        async def hold() -> None:
            await again.wait()

        queued_before = bulkhead_now()["queued"]
        held = [asyncio.ensure_future(p.call_async(hold)) for _ in range(TASK_SLOTS)]
        await settle(lambda: bulkhead_now()["inFlight"] == TASK_SLOTS, "refilled after the run")
        assert bulkhead_now()["queued"] == queued_before and bulkhead_now()["queueDepth"] == 0
        again.set()
        await asyncio.gather(*held)
        return tasks, results, mid, elapsed

    tasks, results, mid, elapsed = asyncio.run(main())

    cancelled = [i for i, t in enumerate(tasks) if t.cancelled()]
    assert cancelled == list(range(0, TASKS, 4))
    for i, r in enumerate(results):
        if i % 4 == 0:
            assert isinstance(r, asyncio.CancelledError), f"task {i}: {r!r}"
        else:
            assert r == i, f"task {i}: {r!r}"
    n_cancelled = len(cancelled)
    survivors = TASKS - n_cancelled
    s = p.stats()
    assert s["calls"] == TASKS + TASK_SLOTS
    assert s["succeeded"] == survivors + TASK_SLOTS
    assert s["cancelled"] == n_cancelled
    assert set(s["failed"].values()) == {0}
    assert s["inFlight"] == 0
    bh = s["bulkhead"]
    assert (bh["inFlight"], bh["queueDepth"], bh["rejectedFull"], bh["queueTimeouts"], bh["unmatchedReleases"]) == (0, 0, 0, 0, 0)
    # Every call was admitted or left the queue cancelled; the first wave never queued.
    assert bh["queued"] == TASKS - TASK_SLOTS
    assert bh["admitted"] + bh["cancelled"] == TASKS + TASK_SLOTS
    assert bh["woken"] == bh["admitted"] - 2 * TASK_SLOTS
    # A quarter of the running wave (TASK_SLOTS / 4) was cancelled while holding a slot; the
    # rest while queued (or just woken, before it ran).
    assert n_cancelled - TASK_SLOTS // 4 - TASK_SLOTS <= bh["cancelled"] <= n_cancelled - TASK_SLOTS // 4
    assert mid["cancelled"] == bh["cancelled"]
    assert s["attempts"] == len(ran) + TASK_SLOTS
    breaker = s["breaker"]
    assert (breaker["inFlight"], breaker["failures"], breaker["successes"]) == (0, 0, survivors + TASK_SLOTS)
    assert peak == TASK_SLOTS
    record(
        capsys,
        f"{TASKS} concurrent asyncio tasks, {n_cancelled} cancelled (running or queued), one pipeline (bulkhead {TASK_SLOTS})",
        TASKS,
        elapsed,
        f"; {bh['cancelled']} left the queue cancelled",
    )


@pytest.mark.parametrize("clock", [None, "fake"])
def test_a_cancelled_attempt_keeps_its_slot_until_its_clean_up_ends(clock: Optional[str]) -> None:
    # Found by the cancellation stress above: with a timeout, an attempt runs as its own task;
    # cancelling the caller gave the slot away at once, while the attempt's clean-up still ran.
    p = Pipeline(
        {"bulkhead": {"maxConcurrent": 1, "maxQueue": 1}, "timeout": {"perAttempt": "30s"}},
        clock=None if clock is None else FakeClock(autojump=False),
    )
    log: List[str] = []

    async def first() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            log.append("clean-up begins")
            for _ in range(5):
                await asyncio.sleep(0)
            log.append("clean-up ends")

    async def second() -> None:
        log.append("second starts")

    async def main() -> None:
        a = asyncio.ensure_future(p.call_async(first))
        b = asyncio.ensure_future(p.call_async(second))
        for _ in range(20):
            await asyncio.sleep(0)
        assert p.stats()["bulkhead"]["queueDepth"] == 1
        a.cancel()
        await asyncio.gather(a, b, return_exceptions=True)
        assert a.cancelled()

    asyncio.run(main())
    assert log == ["clean-up begins", "clean-up ends", "second starts"]
    s = p.stats()
    assert (s["cancelled"], s["succeeded"], s["inFlight"], s["bulkhead"]["inFlight"]) == (1, 1, 0, 0)
