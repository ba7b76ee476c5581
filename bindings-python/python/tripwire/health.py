"""HealthChecker (DESIGN §3.7): named checks run concurrently with timeouts; the core keeps
each check's status (with hysteresis), the overall status and the report.

A check is a function (``def`` or ``async def``) that passes unless it raises or returns
``False``. ``check()`` runs sync checks in threads (a thread cannot be interrupted: one past
its deadline is reported as timed out and its late result is ignored); ``check_async()``
runs async checks as tasks, cancelled at their deadline, and sync checks in the loop's
executor.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import math
import threading
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple, Union, cast

from . import _native
from ._clock import check_clock
from ._config import to_json
from ._events import Listener, Listeners, health_event
from .errors import ClockError

__all__ = ["HealthChecker"]

CheckFn = Callable[[], Union[Any, Awaitable[Any]]]

_REASONS = {200: "200 OK", 503: "503 Service Unavailable"}


def _timestamp() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HealthChecker:
    """A registry of named health checks.

    >>> checker = HealthChecker()
    >>> checker.register("db", lambda: True, timeout=2.0)
    >>> checker.check()["status"]
    'healthy'
    """

    def __init__(self, clock: Any = None) -> None:
        self._clock = check_clock(clock)
        self._reg = _native.HealthRegistry(None)
        self._fns: Dict[str, CheckFn] = {}
        self._breakers: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self.listeners = Listeners(lambda on: None)

    # -- registration ------------------------------------------------------------------

    def register(
        self,
        name: str,
        fn: CheckFn,
        *,
        timeout: float = 5.0,
        critical: bool = True,
        interval: float = 10.0,
        failure_threshold: int = 1,
        success_threshold: int = 1,
    ) -> None:
        """Add a check. Times are in seconds. A non-critical check that fails makes the status
        ``degraded``, a critical one ``unhealthy``. ``interval`` spaces the periodic runs of
        :meth:`run_due`; thresholds add hysteresis (consecutive results needed to flip)."""
        if not callable(fn):
            raise TypeError(f"fn: must be callable, got {type(fn).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name: must be a string, got {type(name).__name__}")
        for field, value in (("timeout", timeout), ("interval", interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{field}: must be a number of seconds, got {type(value).__name__}")
        config = {
            "timeout": timeout * 1000.0,
            "critical": critical,
            "interval": interval * 1000.0,
            "failureThreshold": failure_threshold,
            "successThreshold": success_threshold,
        }
        with self._lock:
            self._reg.register(name, to_json(config))
            self._fns[name] = fn
        self._drain()

    def unregister(self, name: str) -> bool:
        """Remove a check; ``False`` when none has that name."""
        with self._lock:
            self._fns.pop(name, None)
            removed = self._reg.unregister(name)
        self._drain()
        return removed

    def add_breaker(self, name: str, breaker: Any) -> None:
        """List a breaker (a :class:`CircuitBreaker` or a :class:`Pipeline` with one): while it
        is open, half-open or forced open the status is at least ``degraded``."""
        if not hasattr(breaker, "state"):
            raise TypeError(f"breaker: must have a state, got {type(breaker).__name__}")
        self._breakers[name] = breaker
        self._sync_breakers()

    def remove_breaker(self, name: str) -> bool:
        self._breakers.pop(name, None)
        removed = self._reg.remove_breaker(name)
        self._drain()
        return removed

    # -- running ---------------------------------------------------------------------------

    def _now(self) -> int:
        if self._clock is None:
            return _native.monotonic_ns()
        return _seconds_to_ns(self._clock.monotonic())

    def _sync_breakers(self) -> None:
        for name, b in list(self._breakers.items()):
            state = b.state
            if state is not None:
                self._reg.set_breaker(name, str(state))
        self._drain()

    def _start(self, all_checks: bool) -> List[Tuple[int, str, int, CheckFn]]:
        self._sync_breakers()
        now = self._now()
        with self._lock:
            due = self._reg.due_all(now) if all_checks else self._reg.due(now)
            started = [(cid, name, deadline, self._fns[name]) for cid, name, deadline in due if name in self._fns]
        self._drain()
        return started

    def _report(self, cid: int, ok: bool, started: int, error: Optional[str]) -> None:
        now = self._now()
        try:
            self._reg.report(cid, ok, max(0, now - started), error, now)
        except Exception:  # unregistered while it ran: nothing to record
            pass
        self._drain()

    def _run_sync_check(self, cid: int, fn: CheckFn) -> None:
        started = self._now()
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = asyncio.run(_as_coroutine(result))
        except Exception as e:  # noqa: BLE001 - a failing check is a result
            self._report(cid, False, started, _error_text(e))
            return
        self._report(cid, result is not False, started, None if result is not False else "returned False")

    def check(self) -> Dict[str, Any]:
        """Run every check now, concurrently (sync checks in threads), wait for each until its
        timeout, and return the report dict: ``{"status", "timestamp", "checks": {name:
        {"status", "critical", "latencyMs", "error", ...}}, "breakers": {...}}``."""
        started = self._start(True)
        self._run_threads(started)
        return self.report()

    def _run_threads(self, started: List[Tuple[int, str, int, CheckFn]]) -> None:
        threads = []
        for cid, name, deadline, fn in started:
            t = threading.Thread(target=self._run_sync_check, args=(cid, fn), name=f"tripwire-check-{name}", daemon=True)
            t.start()
            threads.append((t, deadline))
        for t, deadline in threads:
            remaining = (deadline - self._now()) / 1e9
            if remaining > 0:
                t.join(remaining)
        self._expire()

    async def check_async(self) -> Dict[str, Any]:
        """Run every check now on this loop (async checks as tasks cancelled at their
        deadline, sync ones in the default executor) and return the report dict."""
        started = self._start(True)
        await self._run_tasks(started)
        return self.report()

    async def _run_tasks(self, started: List[Tuple[int, str, int, CheckFn]]) -> None:
        loop = asyncio.get_running_loop()

        async def one(cid: int, deadline: int, fn: CheckFn) -> None:
            t0 = self._now()
            if inspect.iscoroutinefunction(fn):
                work: "asyncio.Future[Any]" = asyncio.ensure_future(fn())
            else:
                work = loop.run_in_executor(None, fn)
            try:
                done, _ = await asyncio.wait({work}, timeout=max(0, deadline - self._now()) / 1e9)
            except BaseException:
                work.cancel()
                raise
            if work not in done:
                work.cancel()
                return  # expired below
            try:
                result = work.result()
                if inspect.isawaitable(result):
                    result = await result
            except Exception as e:  # noqa: BLE001
                self._report(cid, False, t0, _error_text(e))
                return
            self._report(cid, result is not False, t0, None if result is not False else "returned False")

        await asyncio.gather(*(one(cid, deadline, fn) for cid, _, deadline, fn in started))
        self._expire()

    def run_due(self) -> Optional[float]:
        """Run the checks whose interval has come (for a periodic loop); returns the seconds
        until the next one is due, or ``None`` without checks."""
        started = self._start(False)
        self._run_threads(started)
        return self._next_due()

    async def run_due_async(self) -> Optional[float]:
        """As :meth:`run_due`, on the running loop."""
        started = self._start(False)
        await self._run_tasks(started)
        return self._next_due()

    def _next_due(self) -> Optional[float]:
        t = self._reg.poll_timeout()
        return None if t is None else max(0.0, (t - self._now()) / 1e9)

    def _expire(self) -> None:
        self._reg.expire(self._now())
        self._drain()

    # -- results ---------------------------------------------------------------------------

    def report(self) -> Dict[str, Any]:
        """The last results as the report dict (no check is run)."""
        self._sync_breakers()
        return cast(Dict[str, Any], json.loads(self._reg.report_json(_timestamp())))

    @property
    def status(self) -> str:
        """``"healthy"``, ``"degraded"`` or ``"unhealthy"`` as of the last results."""
        return self._reg.status()

    @property
    def http_status(self) -> int:
        """200 (healthy, degraded) or 503 (unhealthy)."""
        return self._reg.http_status()

    def stats(self) -> Dict[str, Any]:
        return cast(Dict[str, Any], json.loads(self._reg.metrics_json()))

    def on(self, event: str, listener: Optional[Listener] = None) -> Any:
        """Listen to ``checkChanged``, ``timedOut`` or ``statusChanged`` (``"*"``: all)."""
        if listener is None:
            return lambda f: self.on(event, f)
        self.listeners.add(event, listener)
        return listener

    def off(self, event: str, listener: Listener) -> bool:
        return self.listeners.remove(event, listener)

    def _drain(self) -> None:
        # After every input: drain the registry's events (listeners run with no lock held).
        events = self._reg.take_events()
        if self.listeners:
            for t in events:
                self.listeners.emit(health_event(t))

    # -- HTTP ------------------------------------------------------------------------------

    def wsgi_app(self) -> Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        """A WSGI app that runs the checks and serves the report as JSON: 200 when healthy
        or degraded, 503 when unhealthy."""

        def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            report = self.check()
            body = json.dumps(report).encode("utf-8")
            code = self.http_status
            start_response(
                _REASONS.get(code, f"{code} Unknown"),
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [body]

        return app

    def asgi_app(self) -> Callable[..., Awaitable[None]]:
        """An ASGI app that runs the checks on the loop and serves the report (200 / 503)."""

        async def app(scope: Dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            if scope["type"] != "http":
                raise ValueError(f"tripwire health app: unsupported scope type {scope['type']!r}")
            report = await self.check_async()
            body = json.dumps(report).encode("utf-8")
            await send(
                {
                    "type": "http.response.start",
                    "status": self.http_status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        return app


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _seconds_to_ns(t: Any) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"clock.monotonic(): must be a number of seconds, got {type(t).__name__}")
    if not math.isfinite(t) or t < 0:
        raise ClockError(f"clock.monotonic(): must be a finite number of seconds >= 0, got {t}")
    return int(round(t * 1e9))
