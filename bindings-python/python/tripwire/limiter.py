"""RateLimiter and KeyedRateLimiter (DESIGN §3.5)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, TypeVar, Union, cast, overload

from . import _native
from ._clock import check_clock, host_seed
from ._config import to_json
from ._events import Listener
from ._runner import Hub
from .errors import RateLimitedError

__all__ = ["RateLimiter", "KeyedRateLimiter", "RateLimitDecision"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: ``check()``'s result: ``allowed``, ``wait`` (seconds to wait before going on, when the
#: limit reserved capacity within ``maxWait``), ``retry_after`` (seconds until the same check
#: would pass, on a denial; ``None`` when the cost can never pass). Truthy when allowed.
RateLimitDecision = _native.RateLimitDecision


class _Events:
    _hub: Hub

    @overload
    def on(self, event: str) -> Callable[[Listener], Listener]: ...

    @overload
    def on(self, event: str, listener: Listener) -> Listener: ...

    def on(self, event: str, listener: Optional[Listener] = None) -> Any:
        """Call ``listener(event)`` for events of this type (``"rejected"``; ``"*"``: all)."""
        if listener is None:
            return lambda f: self.on(event, f)
        self._hub.listeners.add(event, listener)
        return listener

    def off(self, event: str, listener: Listener) -> bool:
        return self._hub.listeners.remove(event, listener)


class RateLimiter(_Events):
    """A rate limit, or several that must all pass (``config`` may be a list):
    ``{"algorithm": "tokenBucket" | "gcra" | "fixedWindow" | "slidingWindow", "rate": "100/s",
    "burst": 20, "maxWait": "0ms"}``.

    ``check(cost=1)`` decides now and returns a :data:`RateLimitDecision`. As a decorator (or
    ``call`` / ``call_async`` / ``acquire``) a denial raises :class:`RateLimitedError` with
    ``retry_after``; an admission that reserved capacity waits first.
    """

    def __init__(self, config: Union[Dict[str, Any], List[Any], str], clock: Any = None) -> None:
        clock = check_clock(clock)
        text = to_json(config)
        self._hub = Hub()
        self._native = _native.RateLimiter(text, clock=clock, runner=self._hub)
        self._hub.attach(self._native)
        self._sleep: Callable[[float], Any] = time.sleep if clock is None else clock.sleep
        self._asleep: Callable[[float], Any] = asyncio.sleep if clock is None else clock.asleep
        # The hot path: the native method itself (reads the clock, decides, drains events).
        setattr(self, "check", self._native.check)

    def check(self, cost: int = 1) -> "_native.RateLimitDecision":
        """Take ``cost`` units now: a :data:`RateLimitDecision`."""
        return self._native.check(cost)

    def acquire(self, cost: int = 1) -> None:
        """Take ``cost`` units, waiting if the limit reserved them; raise
        :class:`RateLimitedError` on a denial."""
        d = self._native.check(cost)
        if not d.allowed:
            raise _denied(d)
        if d.wait > 0:
            self._sleep(d.wait)

    async def acquire_async(self, cost: int = 1) -> None:
        """As :meth:`acquire`, awaiting the wait."""
        d = self._native.check(cost)
        if not d.allowed:
            raise _denied(d)
        if d.wait > 0:
            await self._asleep(d.wait)

    def __call__(self, fn: F) -> F:
        """Decorate a function (``def`` or ``async def``): each call takes one unit first."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def limited_async(*args: Any, **kwargs: Any) -> Any:
                await self.acquire_async()
                return await fn(*args, **kwargs)

            return cast(F, limited_async)

        @functools.wraps(fn)
        def limited(*args: Any, **kwargs: Any) -> Any:
            self.acquire()
            return fn(*args, **kwargs)

        return cast(F, limited)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        self.acquire()
        return fn(*args, **kwargs)

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        await self.acquire_async()
        return await fn(*args, **kwargs)

    def available(self) -> int:
        """Units available now without waiting (the tightest limit's)."""
        return self._native.available(self._native.now())

    def stats(self) -> Dict[str, Any]:
        """``allowed``, ``waited``, ``denied``, ``available``."""
        return cast(Dict[str, Any], json.loads(self._native.metrics_json()))

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        """Free the native state; later use raises :class:`UsageError`."""
        self._native.close()


class KeyedRateLimiter(_Events):
    """One rate limit per key (per user, per host) in bounded memory:
    ``{"limit": <rate limit config>, "maxKeys": 10000, "idleExpiry": "10m"}``. A key that is
    currently limited is never evicted."""

    def __init__(self, config: Union[Dict[str, Any], str], clock: Any = None) -> None:
        clock = check_clock(clock)
        self._hub = Hub()
        self._native = _native.KeyedRateLimiter(to_json(config), host_seed(), clock=clock, runner=self._hub)
        self._hub.attach(self._native)
        setattr(self, "check", self._native.check)

    def check(self, key: str, cost: int = 1) -> "_native.RateLimitDecision":
        """Take ``cost`` units for ``key`` now: a :data:`RateLimitDecision`."""
        return self._native.check(key, cost)

    def __len__(self) -> int:
        """Keys held now."""
        return self._native.keys()

    def stats(self) -> Dict[str, Any]:
        return cast(Dict[str, Any], json.loads(self._native.metrics_json()))

    def close(self) -> None:
        self._native.close()


def _denied(d: Any) -> RateLimitedError:
    ra = d.retry_after
    msg = "rate limited" + ("" if ra is None else f" (retry after {ra:.3f}s)")
    return RateLimitedError(msg, retry_after=ra)
