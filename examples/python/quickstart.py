"""tripwire quick start in Python: a flaky HTTP service on 127.0.0.1, called through the
``api`` pipeline of ``examples/policies/default.json`` (rate limit, bulkhead, retry with a
budget, circuit breaker, timeouts, fallback). The service answers for 1 s, fails with 503s
for 3.5 s, then recovers; the program prints the retries, the breaker's trips, the fallbacks
and the recovery from the pipeline's events, and ends by itself.

Only the standard library besides tripwire: http.server in a thread is the service,
urllib.request is the client. An ``HTTPError`` 503 is retryable as it is (tripwire reads its
``status``), so the function just raises.

Run: ``python examples/python/quickstart.py [path/to/policies.json]``
"""

from __future__ import annotations

import http.server
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import tripwire

# How the embedded service behaves, by time since it started (seconds).
HEALTHY_UNTIL = 1.0
BROKEN_UNTIL = 4.5
# How long the program runs, and how often it calls.
RUN_FOR = 8.5
EVERY = 0.1

POLICIES = Path(__file__).resolve().parent.parent / "policies" / "default.json"


@dataclass
class Quote:
    price: float
    source: str
    why: str = ""


def fetch_price(url: str) -> Quote:
    """One attempt: ``GET /price``. A 503 raises ``HTTPError`` (retryable: a 5xx), a 4xx
    would be the caller's fault (ignored by the breaker, not retried)."""
    # The socket timeout matches the policy's per-attempt timeout: Python cannot interrupt a
    # blocking call, so the I/O must give up by itself.
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as e:
        e.close()  # it holds the connection; its .status stays readable
        raise
    return Quote(price=float(body.split("=")[1]), source="the service")


def from_cache(error: tripwire.TripwireError) -> Quote:
    """The fallback, for every kind listed in the file's ``fallback.on``."""
    why = error.code
    if error.retry_after is not None:
        why += f", retry after {error.retry_after * 1000:.0f} ms"
    return Quote(price=40, source="the cache", why=why)


class Log:
    """What happened, printed in order; runs of plain successes become one line."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.oks: Optional[Tuple[int, int, float]] = None  # first call, last call, when
        self.fallbacks = 0
        self.retries = 0  # retries scheduled during the current call
        self.opened = 0
        self.closed = 0

    def secs(self, at: Optional[float] = None) -> float:
        return (time.monotonic() if at is None else at) - self.origin

    def ok(self, n: int) -> None:
        first, _, at = self.oks or (n, n, self.secs())
        self.oks = (first, n, at)

    def line(self, text: str) -> None:
        self.flush()
        print(text, flush=True)

    def flush(self) -> None:
        if self.oks is not None:
            first, last, at = self.oks
            self.oks = None
            calls = f"call {first:>2}" if first == last else f"calls {first}-{last}"
            print(f"{at:>6.2f}s  {calls}  ok, price=42 from the service at the first attempt")

    # -- the pipeline's events (listeners run on the calling thread, in order) -------------

    def state_changed(self, e: tripwire.Event) -> None:
        if e.to_state == "open":
            self.opened += 1
        elif e.to_state == "closed":
            self.closed += 1
        self.line(f"{self.secs(e.at):>6.2f}s  ── breaker {e.from_state} → {e.to_state}")

    def retry_scheduled(self, e: tripwire.Event) -> None:
        self.retries += 1
        delay = (e.delay or 0.0) * 1000
        at = self.secs(e.at)
        self.line(f"{at:>6.2f}s            retry: attempt {e.attempt} in {delay:.0f} ms")


def start_flaky_service(origin: float) -> str:
    """The flaky service on an ephemeral port, in a daemon thread; returns its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            t = time.monotonic() - origin
            if HEALTHY_UNTIL <= t < BROKEN_UNTIL:
                status, body = 503, b"overloaded"
            else:
                time.sleep(0.005)
                status, body = 200, b"price=42"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep the story readable

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/price"


def main(argv: List[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else POLICIES
    try:
        policies = tripwire.load_policies(path, fallbacks={"api": from_cache})
    except tripwire.ConfigError as e:
        for field, reason in e.issues:  # every issue of a bad file, each with its field path
            print(f"{path}: {field}: {reason}")
        return 1
    except OSError as e:
        print(f"cannot read {path}: {e.strerror}")
        return 1
    api = policies["api"]

    origin = time.monotonic()  # the pipeline's clock: CLOCK_MONOTONIC, as time.monotonic()
    url = start_flaky_service(origin)
    log = Log(origin)
    api.on("stateChanged", log.state_changed)
    api.on("retryScheduled", log.retry_scheduled)
    print(f'tripwire quick start: pipeline "api" from {path}')
    print(f"flaky service on {url}: healthy, then 503s from 1 s to 4.5 s, then healthy\n")

    n = 0
    next_call = origin
    while time.monotonic() - origin < RUN_FOR:
        n += 1
        started = time.monotonic()
        log.retries = 0
        quote = api.call(fetch_price, url)
        took = (time.monotonic() - started) * 1000
        if quote.source == "the cache":
            log.fallbacks += 1
            log.line(
                f"{log.secs():>6.2f}s  call {n:>2}  fallback  price={quote.price:.0f} "
                f"from the cache ({quote.why})  ({took:.0f} ms)"
            )
        elif log.retries:
            log.line(
                f"{log.secs():>6.2f}s  call {n:>2}  ok        price={quote.price:.0f} "
                f"from the service ({log.retries + 1} attempt(s))  ({took:.0f} ms)"
            )
        else:
            log.ok(n)
        # One call every 100 ms, or right away when the last one took longer.
        next_call = max(next_call + EVERY, time.monotonic())
        time.sleep(max(0.0, next_call - time.monotonic()))

    log.flush()
    stats = api.stats()
    print(
        f"\n{stats['calls']} calls: {stats['succeeded']} answered by the service, "
        f"{log.fallbacks} by the fallback; {stats['attempts']} requests reached it; "
        f"the breaker opened {log.opened} time(s) and closed again {log.closed} time(s)"
    )
    # The example checks its own story, so that it cannot rot silently in CI.
    recovered = api.state == "closed"
    policies.close()
    if log.opened == 0 or log.closed == 0 or not recovered or log.fallbacks == 0:
        print("expected the breaker to open during the outage and close after it")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
