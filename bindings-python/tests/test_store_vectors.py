"""Every ``sharedRateLimit`` vector and every ``gcra`` rate-limit vector, replayed through the
raw ``SharedLimiter``, and every ``fleet`` vector, replayed through several native pipelines
sharing a breaker, all with the ``RedisStore`` adapter and the real scripts on a real
redis-server: decisions must equal the in-memory core's (the vectors' answers)."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any, Callable, Iterator, List, Tuple

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import vectors
from tripwire.redis_store import RedisStore

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors"


@pytest.fixture
def admin(redis_url: str) -> Iterator[Any]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def _replayable() -> List[Tuple[str, Callable[[Any, Any], None]]]:
    out: List[Tuple[str, Callable[[Any, Any], None]]] = []
    for f in sorted(VECTORS.glob("*.json")):
        v = json.loads(f.read_text())
        if vectors.is_gcra(v):
            out.append((f.stem, lambda store, v=v: vectors.replay_gcra(v, store)))
        elif v["kind"] == "sharedRateLimit":
            out.append((f.stem, lambda store, v=v: vectors.run_shared(v, store)))
        elif v["kind"] == "fleet":
            out.append((f.stem, lambda store, v=v: vectors.run_fleet(v, store)))
    return out


def _fleet_requests(stem: str) -> int:
    """The store requests a fleet vector says its calls carry."""
    v = json.loads((VECTORS / f"{stem}.json").read_text())
    return sum(step["expect"]["requests"] for step in v["steps"] if step["op"] == "call")


def _fleet(name: str) -> Any:
    v = json.loads((VECTORS / f"{name}.json").read_text())
    assert v["kind"] == "fleet"
    return v


def test_every_shared_and_gcra_vector_replays_through_redis(redis_url: str, admin: Any) -> None:
    runs = _replayable()
    kinds = {name.split("-")[0] for name, _ in runs}
    assert len(runs) >= 12 and kinds == {"ratelimit", "shared", "fleet"}, [n for n, _ in runs]
    assert sum(name.startswith("fleet-") for name, _ in runs) >= 3, [n for n, _ in runs]
    admin.script_flush()  # the first request must meet NOSCRIPT
    before = int(admin.info("stats")["total_connections_received"])
    client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
    store = RedisStore(client)
    failures = []
    try:
        for name, run in runs:
            admin.flushall()  # each vector starts from an empty store (FLUSHALL keeps scripts)
            sent = store.sent
            try:
                run(store.run)
            except vectors.VectorFailure as e:
                failures.append(f"{name}: {e}")
                continue
            if name.startswith("fleet-"):
                # Every store step really went to Redis, and left the shared breaker's keys.
                if store.sent - sent != _fleet_requests(name):
                    failures.append(f"{name}: {store.sent - sent} requests sent, the vector counts {_fleet_requests(name)}")
                if not admin.keys("tw:*"):
                    failures.append(f"{name}: no tripwire key in Redis after the vector")
    finally:
        client.close()
    assert not failures, "\n".join(failures)
    connections = int(admin.info("stats")["total_connections_received"]) - before
    assert connections == 1, "one connection ran every request"
    assert store.evals == 2, "one EVAL per script (gcra, breaker) on that connection: every other request is an EVALSHA"
    fleet_requests = sum(_fleet_requests(name) for name, _ in runs if name.startswith("fleet-"))
    assert fleet_requests >= 20 and store.sent >= 35 + fleet_requests and (store.timeouts, store.unavailable, store.failed) == (0, 0, 0)


def test_the_shared_runner_catches_a_wrong_expectation(redis_url: str) -> None:
    v = json.loads((VECTORS / "shared-store-decides-and-caches.json").read_text())
    v["steps"][2]["expect"]["retryAfter"] = 99  # the store says 100 ms
    with pytest.raises(vectors.VectorFailure, match="retryAfter"):
        vectors.run_shared(v)


def test_a_gcra_replay_catches_a_wrong_expectation(redis_url: str) -> None:
    v = json.loads((VECTORS / "ratelimit-gcra-burst-refill.json").read_text())
    for step in v["steps"]:
        if step["op"] == "check" and step["expect"]["allowed"]:
            step["expect"]["allowed"] = False
            break
    store = vectors._default_store()
    with pytest.raises(vectors.VectorFailure, match="allowed"):
        vectors.replay_gcra(v, store)



@pytest.mark.parametrize(
    "name, index, field, wrong",
    [
        # A call's result: instance 2 adopts the fleet's open at 1200 ms.
        ("fleet-signal-quorum-one-prober", 13, "result", "ok"),
        # The store requests a call carried: A's trips carry none before its next flush.
        ("fleet-signal-quorum-one-prober", 3, "requests", 1),
        # A share metric: B was refused the probe lease.
        ("fleet-signal-failed-probe-reopens", 13, "probesDenied", 0),
        # The fleet window's sums, as instance 1 last read them.
        ("fleet-aggregate-quorum-of-reporters", 36, "fleetFailures", 15),
    ],
)
def test_the_fleet_runner_catches_a_wrong_expectation(redis_url: str, name: str, index: int, field: str, wrong: Any) -> None:
    v = _fleet(name)
    step = v["steps"][index]
    assert field in step["expect"] and step["expect"][field] != wrong, step
    step["expect"][field] = wrong
    where = re.escape(f"step {index} ({step['op']}) (instance {step['instance']}).{field}: expected")
    with pytest.raises(vectors.VectorFailure, match=where):
        vectors.run_fleet(v)


def test_the_fleet_runner_catches_a_wrong_state(redis_url: str) -> None:
    v = _fleet("fleet-signal-quorum-one-prober")
    step = v["steps"][14]
    assert (step["op"], step["instance"], step["expect"]) == ("state", 2, "open")
    step["expect"] = "closed"
    with pytest.raises(vectors.VectorFailure, match=re.escape('step 14 (state) (instance 2): expected "closed", got "open"')):
        vectors.run_fleet(v)


def test_the_fleet_vectors_need_the_host_clock_hook(redis_url: str) -> None:
    # On the store's own clock (production), the scripts ignore the vector's times: the
    # fleet's 3 s open period then runs in real time and has not ended at the vector's
    # 3100 ms, so instance 0's probe is refused. The hook is what makes the replay exact.
    v = _fleet("fleet-signal-quorum-one-prober")
    with pytest.raises(vectors.VectorFailure, match=re.escape("step 16 (call) (instance 0).result: expected \"ok\", got \"circuitOpen\"")):
        vectors.run_fleet(v, host_clock=False)
