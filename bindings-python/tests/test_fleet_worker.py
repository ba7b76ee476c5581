"""The fleet worker (tests/fleet/worker.py) keeps the contract of tests/fleet/README.md: a
short run against the private redis-server, its decision lines and its JSON totals."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from collections import Counter

WORKER = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fleet" / "worker.py"
LINE = re.compile(r"^(store|cache|fallback) ([01]) (\d+) (\d+) (\d+)$")


def test_the_fleet_worker_output(redis_url: str, tmp_path: pathlib.Path) -> None:
    import redis

    admin = redis.Redis.from_url(redis_url)
    admin.flushall()
    admin.close()
    out = tmp_path / "decisions"
    config = {"rateLimit": {"algorithm": "gcra", "rate": "200/s", "burst": 20}, "store": {"key": "worker-test", "timeout": "500ms"}}
    run = subprocess.run(
        [sys.executable, "-W", "error", str(WORKER), "--url", redis_url, "--config", json.dumps(config),
         "--seconds", "1", "--callers", "3", "--out", str(out), "--seed", "5"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    totals = json.loads(run.stdout)
    assert set(totals) == {"lang", "decisions", "admitted", "sent", "evals", "timeouts", "unavailable"}
    assert totals["lang"] == "python" and totals["evals"] <= 3, "at most one EVAL per connection"
    assert (totals["timeouts"], totals["unavailable"]) == (0, 0)
    lines = out.read_text().splitlines()
    assert len(lines) == totals["decisions"] > totals["admitted"] > 0
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), next(line for line, m in zip(lines, parsed) if not m)
    sources = Counter((m.group(1), m.group(2)) for m in parsed if m)
    assert sources[("store", "1")] == totals["admitted"] and sources[("fallback", "1")] == 0
    assert totals["sent"] == sources[("store", "1")] + sources[("store", "0")], "one request per store decision"
    # On store time, the run admits at most burst + rate * elapsed.
    stamps = sorted(int(m.group(3)) * 10**9 + int(m.group(4)) for m in parsed if m and m.group(1) == "store")
    elapsed = (stamps[-1] - stamps[0]) / 1e9
    assert totals["admitted"] <= 20 + 200 * elapsed + 1
    # Every store decision carries the store's clock.
    assert all(m.group(3) != "0" for m in parsed if m and m.group(1) == "store")
