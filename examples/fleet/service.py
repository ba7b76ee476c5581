"""One instance of a service calling a partner API through tripwire, in Python.

Run by examples/fleet/demo.py next to the same service in other languages: every instance
loads examples/fleet/fleet.json, so they share one rate limit (100/s, burst 10) and one
circuit breaker through the Redis at $TRIPWIRE_REDIS_URL. The partner is a local stand-in
that fails every call between --down-from and --down-until (Unix seconds).

Prints one line per second and, at the end, a JSON summary on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import tripwire


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--down-from", type=float, default=0.0)
    ap.add_argument("--down-until", type=float, default=0.0)
    a = ap.parse_args()

    client = redis.Redis.from_url(
        os.environ.get("TRIPWIRE_REDIS_URL", "redis://127.0.0.1:6379/"),
        socket_timeout=0.025,
        socket_connect_timeout=0.025,
        retry=Retry(NoBackoff(), 0),
    )
    policies = tripwire.load_policies(Path(__file__).with_name("fleet.json"), store=client)
    api = policies["partner"]

    def partner() -> str:
        if a.down_from <= time.time() < a.down_until:
            raise ConnectionError("partner unavailable")
        return "ok"

    counts = {"admitted": 0, "rateLimited": 0, "circuitOpen": 0, "failed": 0}
    second = {k: 0 for k in counts}
    start = time.monotonic()
    next_report = start + 1.0
    while time.monotonic() - start < a.seconds:
        try:
            api.call(partner)
            key = "admitted"
        except tripwire.RateLimitedError:
            key = "rateLimited"
        except tripwire.CircuitOpenError:
            key = "circuitOpen"
        except Exception:  # the partner's own failure, passed through
            key = "failed"
        counts[key] += 1
        second[key] += 1
        if time.monotonic() >= next_report:
            state = api.state.value if api.state is not None else "-"
            print(f"python  {next_report - start:4.0f}s  admitted {second['admitted']:4}  "
                  f"rateLimited {second['rateLimited']:5}  circuitOpen {second['circuitOpen']:4}  "
                  f"failed {second['failed']:3}  breaker {state}", flush=True)
            second = {k: 0 for k in counts}
            next_report += 1.0
        time.sleep(0.002)
    stats = api.stats()
    print(json.dumps({"lang": "python", **counts, "share": stats.get("share"),
                      "store": stats.get("store")}))
    client.close()


if __name__ == "__main__":
    main()
