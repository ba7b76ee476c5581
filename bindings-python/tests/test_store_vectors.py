"""Every ``sharedRateLimit`` vector and every ``gcra`` rate-limit vector, replayed through the
raw ``SharedLimiter``, the ``RedisStore`` adapter and the real script on a real redis-server:
decisions must equal the in-memory core's (the vectors' answers)."""

from __future__ import annotations

import json
import pathlib
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
    return out


def test_every_shared_and_gcra_vector_replays_through_redis(redis_url: str, admin: Any) -> None:
    runs = _replayable()
    kinds = {name.split("-")[0] for name, _ in runs}
    assert len(runs) >= 9 and kinds == {"ratelimit", "shared"}, [n for n, _ in runs]
    admin.script_flush()  # the first request must meet NOSCRIPT
    before = int(admin.info("stats")["total_connections_received"])
    client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
    store = RedisStore(client)
    failures = []
    try:
        for name, run in runs:
            admin.flushall()  # each vector starts from an empty store (FLUSHALL keeps scripts)
            try:
                run(store.run)
            except vectors.VectorFailure as e:
                failures.append(f"{name}: {e}")
    finally:
        client.close()
    assert not failures, "\n".join(failures)
    connections = int(admin.info("stats")["total_connections_received"]) - before
    assert connections == 1, "one connection ran every request"
    assert store.evals == 1, "exactly one EVAL on that connection: every other request is an EVALSHA"
    assert store.sent >= 35 and (store.timeouts, store.unavailable, store.failed) == (0, 0, 0)


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
