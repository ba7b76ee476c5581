"""The Python fleet worker (tests/fleet/README.md): one process, C caller threads on one
shared limit, each caller with its own sync redis-py client (one connection) and
``tripwire.redis_store.RedisStore`` adapter, all on one raw ``SharedLimiter``.

    .venv/bin/python tests/fleet/worker.py --url redis://127.0.0.1:PORT/ \\
        --config '{"rateLimit": {...}, "store": {...}}' --seconds 5 --callers 4 --out FILE [--seed N]

Appends ``<source> <allowed 0|1> <store seconds> <store ns> <latency ns>`` per decision to
FILE and prints one JSON line of totals.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any, Dict, List

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tripwire import _native
from tripwire.redis_store import RedisStore

#: The longest a denied caller sleeps (and a never-passing denial's sleep).
MAX_SLEEP = 0.05
#: Lines a caller keeps before appending them to the file.
FLUSH_EVERY = 2000


def caller(
    limiter: Any,
    store: RedisStore,
    until: float,
    out: Any,
    out_lock: threading.Lock,
    totals: Dict[str, int],
    totals_lock: threading.Lock,
) -> None:
    lines: List[str] = []
    decisions = admitted = 0
    now_ns = time.monotonic_ns
    while time.monotonic() < until:
        started = now_ns()
        r = limiter.check("", started, 1)
        if isinstance(r, tuple):
            allowed, _, retry_after, source = r
            store_s = store_ns = 0
        else:
            request = limiter.request(r)
            reply = store.run(request) if request is not None else "unavailable"
            allowed, _, retry_after, source = limiter.reply(r, reply, now_ns())
            store_s = store_ns = 0
            if source == "store" and isinstance(reply, list):  # the store's clock
                store_s, store_ns = reply[1], reply[2]
        latency = now_ns() - started
        decisions += 1
        admitted += allowed
        lines.append(f"{source} {int(allowed)} {store_s} {store_ns} {latency}\n")
        if len(lines) >= FLUSH_EVERY:
            with out_lock:
                out.writelines(lines)
            lines.clear()
        if not allowed:
            time.sleep(MAX_SLEEP if retry_after is None else min(retry_after / 1e9, MAX_SLEEP))
    with out_lock:
        out.writelines(lines)
    with totals_lock:
        totals["decisions"] += decisions
        totals["admitted"] += admitted


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--config", required=True, help="a pipeline config (JSON) with rateLimit and store")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--callers", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)

    config = json.loads(args.config)
    shared = {k: config[k] for k in ("rateLimit", "store", "keyed") if k in config}
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "little")
    limiter = _native.SharedLimiter(json.dumps(shared), seed)
    timeout = limiter.timeout_ns / 1e9

    # The user's own clients: no retries, sockets bounded by the store timeout.
    clients = [
        redis.Redis.from_url(args.url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
        for _ in range(args.callers)
    ]
    stores = [RedisStore(c, timeout=timeout) for c in clients]
    totals = {"decisions": 0, "admitted": 0}
    until = time.monotonic() + args.seconds
    out_lock, totals_lock = threading.Lock(), threading.Lock()
    with open(args.out, "a", encoding="ascii") as out:
        threads = [
            threading.Thread(target=caller, args=(limiter, s, until, out, out_lock, totals, totals_lock), daemon=True)
            for s in stores
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in clients:
        c.close()
    print(
        json.dumps(
            {
                "lang": "python",
                "decisions": totals["decisions"],
                "admitted": totals["admitted"],
                "sent": sum(s.sent for s in stores),
                "evals": sum(s.evals for s in stores),
                "timeouts": sum(s.timeouts for s in stores),
                "unavailable": sum(s.unavailable for s in stores),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
