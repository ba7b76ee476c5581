#!/usr/bin/env python3
"""`make demo-fleet`: instances of one service in different languages share one rate limit and
one circuit breaker through a local redis-server.

Starts a private redis-server, then one instance per available language (examples/fleet/
service.py, service.mjs) for --seconds, with the partner API down for two seconds in the
middle. Each instance prints a line per second; at the end this prints every instance's share
of the admitted calls against the one shared limit, and what the shared breaker did.
Stdlib only; the instances need the built bindings (`make python`, `make js`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis(port: int, workdir: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc
        except OSError:
            time.sleep(0.02)
    raise SystemExit("demo-fleet: redis-server did not start")


def instances() -> list[tuple[str, list[str]]]:
    found = []
    py = ROOT / ".venv/bin/python"
    if py.exists():
        found.append(("python", [str(py), str(HERE / "service.py")]))
    if shutil.which("node") and (ROOT / "bindings-js/dist").exists() and (HERE / "service.mjs").exists():
        found.append(("node", ["node", str(HERE / "service.mjs")]))
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--require", type=int, default=2, help="fail with fewer instances than this")
    a = ap.parse_args()
    which = instances()
    if len(which) < a.require:
        raise SystemExit(f"demo-fleet: found instances {[w for w, _ in which]}; build the bindings first")
    config = json.loads((HERE / "fleet.json").read_text())["policies"]["partner"]
    rate = int(config["rateLimit"]["rate"].split("/")[0])
    burst = config["rateLimit"]["burst"]

    workdir = tempfile.mkdtemp(prefix="tw-demo-")
    port = free_port()
    redis = start_redis(port, workdir)
    env = dict(os.environ, TRIPWIRE_REDIS_URL=f"redis://127.0.0.1:{port}/")
    now = time.time()
    down = (now + a.seconds * 0.35, now + a.seconds * 0.35 + 2.0)
    print(f"demo-fleet: {len(which)} instances ({', '.join(w for w, _ in which)}) share "
          f"{rate}/s burst {burst} and one breaker through redis-server :{port}; "
          f"the partner is down from {down[0] - now:.1f}s to {down[1] - now:.1f}s\n")
    procs = []
    try:
        for name, cmd in which:
            procs.append((name, subprocess.Popen(
                cmd + ["--seconds", str(a.seconds), "--down-from", str(down[0]),
                       "--down-until", str(down[1])],
                stdout=subprocess.PIPE, text=True, env=env)))
        summaries = []
        for name, p in procs:
            out, _ = p.communicate(timeout=a.seconds + 60)
            lines = out.strip().splitlines()
            for line in lines[:-1]:
                print(line)
            if p.returncode != 0 or not lines:
                raise SystemExit(f"demo-fleet: the {name} instance failed ({p.returncode})")
            summaries.append(json.loads(lines[-1]))
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
        redis.send_signal(signal.SIGTERM)
        redis.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    total = sum(s["admitted"] for s in summaries)
    # The partner was down for 2 s: failed calls were admitted by the limit too.
    bound = burst + rate * a.seconds
    print(f"\nshare of the admitted calls (one limit for all: at most {bound:.0f} in {a.seconds:g} s):")
    for s in summaries:
        passed = s["admitted"] + s["failed"]
        print(f"  {s['lang']:<8} {passed:6} admitted ({100 * passed / max(1, total + sum(x['failed'] for x in summaries)):.0f} %)"
              f"  rateLimited {s['rateLimited']:6}  circuitOpen {s['circuitOpen']:5}")
    admitted = total + sum(s["failed"] for s in summaries)
    print(f"  together {admitted} of at most {bound:.0f}")
    print("\nthe shared breaker:")
    for s in summaries:
        sh = s.get("share") or {}
        print(f"  {s['lang']:<8} votes {sh.get('votes', 0)}  adopted the fleet's open "
              f"{sh.get('adoptedOpen', 0)}×  probes granted {sh.get('probesGranted', 0)}, "
              f"refused {sh.get('probesDenied', 0)}")
    if admitted > bound * 1.02:
        sys.exit(f"demo-fleet: {admitted} admitted, more than the shared bound {bound:.0f}")


if __name__ == "__main__":
    main()
