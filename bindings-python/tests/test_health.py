"""HealthChecker: sync and async checks, timeouts, the report, WSGI and ASGI apps."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import wsgiref.util
from typing import Any, Dict, List

import pytest

from tripwire import CircuitBreaker, HealthChecker


def failing() -> None:
    raise ConnectionError("db unreachable")


def test_all_healthy_report_shape() -> None:
    checker = HealthChecker()
    checker.register("db", lambda: True)
    checker.register("cache", lambda: None, critical=False)
    report = checker.check()
    assert report["status"] == "healthy"
    assert set(report["checks"]) == {"db", "cache"}
    db = report["checks"]["db"]
    assert db["status"] == "healthy" and db["error"] is None and db["critical"] is True
    assert isinstance(db["latencyMs"], (int, float)) and db["latencyMs"] >= 0
    assert report["timestamp"].endswith("Z")
    assert checker.http_status == 200


def test_critical_failure_is_unhealthy_non_critical_degraded() -> None:
    checker = HealthChecker()
    checker.register("cache", failing, critical=False)
    checker.register("db", lambda: True)
    report = checker.check()
    assert report["status"] == "degraded"
    assert report["checks"]["cache"]["error"] == "ConnectionError: db unreachable"
    assert checker.http_status == 200
    checker.register("queue", lambda: False)
    report = checker.check()
    assert report["status"] == "unhealthy"
    assert report["checks"]["queue"]["error"] == "returned False"
    assert checker.http_status == 503


def test_sync_checks_run_concurrently_and_time_out() -> None:
    checker = HealthChecker()
    release = threading.Event()

    def slow() -> bool:
        release.wait(2)
        return True

    for i in range(4):
        checker.register(f"slow{i}", slow, timeout=0.05)
    t0 = time.monotonic()
    report = checker.check()
    elapsed = time.monotonic() - t0
    release.set()
    assert elapsed < 1.0  # four 50 ms timeouts in parallel, not in series
    assert report["status"] == "unhealthy"
    assert all(c["error"] == "timeout" for c in report["checks"].values())


def test_async_checks_are_cancelled_at_their_deadline() -> None:
    checker = HealthChecker()
    cancelled: List[str] = []

    async def hang() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("hang")
            raise

    async def ok() -> bool:
        await asyncio.sleep(0)
        return True

    checker.register("hang", hang, timeout=0.03, critical=False)
    checker.register("ok", ok)
    checker.register("sync", lambda: True)
    report = asyncio.run(checker.check_async())
    assert report["status"] == "degraded"
    assert report["checks"]["hang"]["error"] == "timeout"
    assert report["checks"]["ok"]["status"] == "healthy"
    assert report["checks"]["sync"]["status"] == "healthy"
    assert cancelled == ["hang"]


def test_async_check_in_sync_check() -> None:
    checker = HealthChecker()

    async def ok() -> bool:
        return True

    checker.register("ok", ok)
    assert checker.check()["status"] == "healthy"


def test_open_breaker_degrades_and_events_fire() -> None:
    checker = HealthChecker()
    checker.register("db", lambda: True)
    breaker = CircuitBreaker({"trip": {"consecutiveFailures": 1}})
    checker.add_breaker("payments", breaker)
    seen: List[Any] = []
    checker.on("statusChanged", lambda e: seen.append((e.from_state, e.to_state)))
    assert checker.check()["status"] == "healthy"
    with pytest.raises(ValueError):
        breaker.call(lambda: (_ for _ in ()).throw(ValueError("x")))
    report = checker.check()
    assert report["status"] == "degraded"
    assert report["breakers"] == {"payments": {"state": "open"}}
    assert seen[-1] == ("healthy", "degraded")
    assert checker.remove_breaker("payments")


def test_hysteresis_thresholds() -> None:
    checker = HealthChecker()
    state = {"ok": True}
    checker.register("db", lambda: state["ok"], failure_threshold=2)
    assert checker.check()["status"] == "healthy"
    state["ok"] = False
    assert checker.check()["checks"]["db"]["status"] == "healthy"
    assert checker.check()["checks"]["db"]["status"] == "unhealthy"


def test_run_due_respects_the_interval() -> None:
    checker = HealthChecker()
    runs: List[int] = []
    checker.register("db", lambda: runs.append(1), interval=60)
    nxt = checker.run_due()
    assert runs == [1] and nxt is not None and 59 < nxt <= 60
    checker.run_due()
    assert runs == [1]  # not due again yet
    assert checker.unregister("db") and not checker.unregister("db")


def _wsgi(app: Any) -> Any:
    environ: Dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO()
    status: List[Any] = []

    def start_response(s: str, headers: List[Any]) -> None:
        status.append((s, dict(headers)))

    body = b"".join(app(environ, start_response))
    return status[0][0], status[0][1], json.loads(body)


def test_wsgi_app_serves_200_then_503() -> None:
    checker = HealthChecker()
    state = {"up": True}
    checker.register("db", lambda: state["up"])
    status, headers, body = _wsgi(checker.wsgi_app())
    assert status.startswith("200") and headers["Content-Type"] == "application/json"
    assert body["status"] == "healthy"
    state["up"] = False
    status, _, body = _wsgi(checker.wsgi_app())
    assert status.startswith("503") and body["status"] == "unhealthy"


def test_asgi_app_serves_the_report() -> None:
    checker = HealthChecker()

    async def down() -> None:
        raise ConnectionError("no")

    checker.register("db", down)
    app = checker.asgi_app()
    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "GET", "path": "/health"}, receive, send))
    assert sent[0]["status"] == 503
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    assert json.loads(sent[1]["body"])["checks"]["db"]["error"] == "ConnectionError: no"

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    life: List[Dict[str, Any]] = []

    async def lreceive() -> Dict[str, Any]:
        return next(messages)

    async def lsend(m: Dict[str, Any]) -> None:
        life.append(m)

    asyncio.run(app({"type": "lifespan"}, lreceive, lsend))
    assert [m["type"] for m in life] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
