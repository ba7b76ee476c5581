"""Pipeline, CircuitBreaker and Bulkhead: policy objects that protect calls.

Each is a core pipeline (a CircuitBreaker is a pipeline holding only a breaker, a Bulkhead
one holding only a bulkhead), so they share one run loop: a decorator for ``def`` and
``async def``, ``call``, ``call_async``, listeners, ``stats()`` and ``prometheus()``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from enum import Enum
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, TypeVar, Union, cast, overload

from . import _native
from ._classify import OUTCOME_SUCCESS, Classifier, Predicate
from ._clock import check_clock, host_seed
from ._config import to_json
from ._events import Listener
from ._runner import ATTEMPT, FAIL, PARK, SLEEP, Runner
from .errors import ConfigError, UsageError

__all__ = ["BreakerState", "Pipeline", "CircuitBreaker", "Bulkhead"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class BreakerState(str, Enum):
    """A circuit breaker's state; compares equal to its name (``state == "open"``)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "halfOpen"
    FORCED_OPEN = "forcedOpen"
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


class _Protected:
    """What every call-protecting policy object can do."""

    _native: Any
    _runner: Runner

    def _setup(self, native: Any, runner: Runner) -> None:
        self._native = native
        self._runner = runner
        runner.attach(native)
        # The hot path: `call` is the native method itself (no Python frame in between).
        setattr(self, "call", native.call)

    # -- protecting calls --------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        """Decorate a function (``def`` or ``async def``): every call runs through the policy."""
        if not callable(fn):
            raise TypeError(f"fn: must be callable, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            runner, native = self._runner, self._native

            @functools.wraps(fn)
            async def protected(*args: Any, **kwargs: Any) -> Any:
                return await runner.run_coroutine(native, fn, args, kwargs)

            return cast(F, protected)
        guarded = self._native.guard(fn)
        functools.update_wrapper(guarded, fn)
        return cast(F, guarded)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the policy (for sync functions; a timeout is
        checked when ``fn`` returns, since Python cannot interrupt a running function)."""
        return cast(T, self._native.call(fn, *args, **kwargs))

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` through the policy. Timeouts cancel the attempt's
        task; the call goes on only after the cancelled task has finished."""
        return cast(T, await self._runner.run_async(self._native, fn, args, kwargs))

    # -- events and metrics ------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[Listener], Listener]: ...

    @overload
    def on(self, event: str, listener: Listener) -> Listener: ...

    def on(self, event: str, listener: Optional[Listener] = None) -> Any:
        """Call ``listener(event)`` for every event of this type (``"*"``: all). Returns the
        listener, so it also works as a decorator: ``@pipeline.on("stateChanged")``.

        Listeners run in the thread whose call caused the event, after the policy's lock is
        released; they may call back into the policy."""
        if listener is None:
            return lambda f: self.on(event, f)
        self._runner.listeners.add(event, listener)
        return listener

    def off(self, event: str, listener: Listener) -> bool:
        """Remove a listener; ``False`` when it was not registered."""
        return self._runner.listeners.remove(event, listener)

    def stats(self) -> Dict[str, Any]:
        """Counters and gauges (the core's ``PipelineStats``, camelCase keys as in every
        language): ``calls``, ``succeeded``, ``failed`` by kind, ``attempts``, ``inFlight``,
        and each policy's metrics; with a ``store``, ``store`` (the shared rate limit's
        ``StoreMetrics``) and, with ``circuitBreaker.share``, ``share`` (the shared breaker's
        ``ShareMetrics``: ``votes``, ``probesGranted``, ``fleetState``...)."""
        return cast(Dict[str, Any], json.loads(self._native.stats_json()))

    def prometheus(self) -> str:
        """The Prometheus text exposition of ``stats()``, labelled ``pipeline="<name>"``."""
        return cast(str, self._native.prometheus())

    @property
    def name(self) -> str:
        return cast(str, self._native.name)

    @property
    def closed(self) -> bool:
        return cast(bool, self._native.closed)

    def close(self) -> None:
        """Free the native state. Later use raises :class:`UsageError` (``reason ==
        "closed"``); calls waiting in a bulkhead queue wake up and raise it too."""
        self._native.close()
        self._runner.wake_all()

    def _now(self) -> int:
        return cast(int, self._native.now())


class _BreakerControls(_Protected):
    @property
    def state(self) -> Optional[BreakerState]:
        """The breaker's state (``None`` when there is no breaker)."""
        s = self._native.breaker_state()
        return None if s is None else BreakerState(s)

    def force_open(self) -> None:
        """Reject every call until :meth:`reset`."""
        self._native.force_open(self._now())

    def disable(self) -> None:
        """Admit every call (metrics only) until :meth:`reset`."""
        self._native.disable(self._now())

    def reset(self) -> None:
        """Back to closed with an empty window."""
        self._native.reset(self._now())


class _BlockGuard(_Protected):
    """``with policy:`` / ``async with policy:`` protect a block (one attempt, no retry)."""

    _calls: "contextvars.ContextVar[Tuple[int, ...]]"

    def _init_block_guard(self) -> None:
        self._calls = contextvars.ContextVar(f"tripwire-block-{id(self)}", default=())

    def _admitted(self, call: int) -> None:
        self._calls.set((call, *self._calls.get()))

    def __enter__(self) -> "_BlockGuard":
        native, runner = self._native, self._runner
        call, step = native.start(native.now(), None)
        step = _wait_for_attempt(runner, native, call, step)
        self._admitted(call)
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        _exit_block(self, exc)

    async def __aenter__(self) -> "_BlockGuard":
        native, runner = self._native, self._runner
        call, step = native.start(native.now(), None)
        step = await _wait_for_attempt_async(runner, native, call, step)
        self._admitted(call)
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        _exit_block(self, exc)


def _wait_for_attempt(runner: Runner, native: Any, call: int, step: Tuple[Any, ...]) -> Tuple[Any, ...]:
    live = True
    try:
        while True:
            tag = step[0]
            if tag == ATTEMPT:
                return step
            if tag == FAIL:
                live = False
                raise runner._error(step, None)
            if tag == SLEEP:
                remaining = step[1] - native.now()
                if remaining > 0:
                    runner._sleep(remaining / 1e9)
                step = native.poll(call, native.now())
            elif tag == PARK:
                step = runner._park(native, call)
            else:
                live = False
                raise UsageError(f"unexpected step {step!r}", "unknownStep")
    except BaseException:
        if live:
            runner._cancel(native, call)
        raise


async def _wait_for_attempt_async(runner: Runner, native: Any, call: int, step: Tuple[Any, ...]) -> Tuple[Any, ...]:
    live = True
    try:
        while True:
            tag = step[0]
            if tag == ATTEMPT:
                return step
            if tag == FAIL:
                live = False
                raise runner._error(step, None)
            if tag == SLEEP:
                remaining = step[1] - native.now()
                if remaining > 0:
                    await runner._asleep(remaining / 1e9)
                step = native.poll(call, native.now())
            elif tag == PARK:
                step = await runner._park_async(native, call)
            else:
                live = False
                raise UsageError(f"unexpected step {step!r}", "unknownStep")
    except BaseException:
        if live:
            runner._cancel(native, call)
        raise


def _exit_block(guard: _BlockGuard, exc: Optional[BaseException]) -> None:
    stack = guard._calls.get()
    if not stack:
        raise UsageError("__exit__ without a matching __enter__", "unknownCall")
    call, rest = stack[0], stack[1:]
    guard._calls.set(rest)
    native, runner = guard._native, guard._runner
    if exc is not None and not isinstance(exc, Exception):
        runner._cancel(native, call)  # interrupted: no outcome
        return
    now = native.now()
    if exc is None:
        step = native.finish(call, OUTCOME_SUCCESS, False, None, now)
    else:
        outcome, retryable, hint = runner.classify(exc)
        step = native.finish(call, outcome, retryable, hint, now)
    if step[0] not in (FAIL, _native.STEP_DONE):
        # A block runs once: a policy that wants another attempt (retry) cannot use `with`.
        runner._cancel(native, call)


class Pipeline(_BreakerControls):
    """The policies of one config composed around calls (DESIGN §3.8): any of ``rateLimit``,
    ``bulkhead``, ``circuitBreaker``, ``retry``, ``timeout``, ``fallback``, plus ``order``
    and ``seed``.

    ``clock``: any object with ``monotonic()``, ``sleep(s)`` and ``async asleep(s)`` (default:
    the system's monotonic clock). ``fallback``: a value, a function ``f(error)`` (async
    allowed under ``call_async``), or a list of them tried in order, used when the config's
    ``fallback.on`` (default: every kind) lists the failure. ``retry_on`` / ``ignore_on``:
    which errors are retryable / ignored by the breaker (an exception class, a tuple, or a
    predicate; defaults in :mod:`tripwire._classify`).

    ``store``: with a ``"store"`` section in the config, the rate limit is shared by every
    instance configured with the same ``store.key``, through your Redis client: a
    ``redis.Redis`` (``call`` and the decorator on ``def``; it must not retry, and its
    ``socket_timeout`` / ``socket_connect_timeout`` must not exceed ``store.timeout``) or a
    ``redis.asyncio.Redis`` (``call_async`` and ``async def``; it must not retry), or any
    adapter of :mod:`tripwire.redis_store`. Each call then makes one round trip (``EVALSHA``)
    unless a cached denial or the fallback decides. Without a store client every store
    request counts as unavailable, and ``store.onUnavailable`` decides (``local``: this
    instance's share of the limit).
    """

    def __init__(
        self,
        config: Union[Dict[str, Any], str],
        clock: Any = None,
        fallback: Any = None,
        *,
        store: Any = None,
        retry_on: Optional[Predicate] = None,
        ignore_on: Optional[Predicate] = None,
        name: str = "default",
    ) -> None:
        clock = check_clock(clock)
        text = to_json(config)
        runner = Runner(clock, fallback, Classifier(retry_on, ignore_on))
        native = _native.Pipeline(text, host_seed(), clock=clock, runner=runner, name=name)
        self._setup(native, runner)
        if store is not None:
            if native.store_timeout() is None:
                raise ConfigError(
                    'store: a store client was given, but the config has no "store" section',
                    [("store", 'a store client was given, but the config has no "store" section')],
                )
            _attach_store(native, runner, store)

    @classmethod
    def _from_native(cls, native: Any, runner: Runner) -> "Pipeline":
        self = cls.__new__(cls)
        self._setup(native, runner)
        return self

    @property
    def store(self) -> Any:
        """The adapter running this pipeline's store requests (a
        :class:`~tripwire.redis_store.RedisStore` / ``AsyncRedisStore`` around the client you
        passed, with its ``sent``, ``evals``, ``timeouts``, ``unavailable`` counters), or
        ``None``."""
        return self._runner.store

    @property
    def store_last_error(self) -> Optional[str]:
        """The last error reply of the shared rate limit's store (``CROSSSLOT``, ``NOPERM``,
        ``WRONGTYPE``...: a deployment mistake, which the fallback decides and
        ``stats()["store"]["errors"]`` counts), or ``None``."""
        return cast(Optional[str], self._native.store_last_error())

    def snapshot(self) -> Dict[str, Any]:
        """The state worth keeping across restarts: ``{"circuitBreaker": <snapshot>}`` (empty
        without a breaker). JSON-serializable."""
        if not self._native.has_breaker:
            return {}
        return {"circuitBreaker": json.loads(self._native.snapshot())}

    def restore(self, snapshot: Dict[str, Any]) -> None:
        """Restore what :meth:`snapshot` returned."""
        if not isinstance(snapshot, dict):
            raise TypeError(f"snapshot: must be a dict, got {type(snapshot).__name__}")
        unknown = set(snapshot) - {"circuitBreaker"}
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"snapshot.{key}: unknown field", [(f"snapshot.{key}", "unknown field")])
        if "circuitBreaker" in snapshot:
            self._native.restore(to_json(snapshot["circuitBreaker"], "snapshot.circuitBreaker"), self._now())

    def reconfigure(self, config: Union[Dict[str, Any], str]) -> None:
        """Apply a new config, keeping the state that still fits (breaker state, tokens, the
        bulkhead's holders and queue). An invalid config raises :class:`ConfigError` and the
        old one stays in force."""
        text = to_json(config)
        store = self._runner.store
        if store is not None and not self._runner.store_async and hasattr(store, "check_timeout"):
            # A sync client must still fit the new store timeout (built aside: nothing changes
            # if it does not).
            timeout = _native.Pipeline(text, 0).store_timeout()
            if timeout is not None:
                store.check_timeout(timeout / 1e9)
        self._native.reconfigure(text, self._now())

    def __repr__(self) -> str:
        return f"<tripwire.Pipeline {self.name!r}>"


def _attach_store(native: Any, runner: Runner, store: Any) -> None:
    """Give the runner the adapter for `store` (a redis-py client or an adapter)."""
    from .redis_store import store_adapter

    timeout = native.store_timeout()
    adapter, is_async = store_adapter(store, None if timeout is None else timeout / 1e9)
    runner.store = adapter
    runner.store_async = is_async


class CircuitBreaker(_BreakerControls, _BlockGuard):
    """A circuit breaker (DESIGN §3.1): a decorator, ``with`` / ``async with``, ``call`` and
    ``call_async``. An exception counts as a failure unless ``ignore_on`` says it is the
    caller's fault (default: an HTTP 4xx other than 408/429); either way it propagates."""

    def __init__(
        self,
        config: Optional[Union[Dict[str, Any], str]] = None,
        clock: Any = None,
        fallback: Any = None,
        *,
        ignore_on: Optional[Predicate] = None,
        name: str = "breaker",
    ) -> None:
        clock = check_clock(clock)
        text = '{"circuitBreaker":' + to_json({} if config is None else config) + "}"
        runner = Runner(clock, fallback, Classifier(None, ignore_on))
        native = _native.Pipeline(text, host_seed(), clock=clock, runner=runner, name=name)
        self._setup(native, runner)
        self._init_block_guard()

    @property
    def state(self) -> BreakerState:
        return BreakerState(self._native.breaker_state())

    def snapshot(self) -> Dict[str, Any]:
        """The breaker's state as a JSON-serializable dict (state, open time left, counts)."""
        return cast(Dict[str, Any], json.loads(self._native.snapshot()))

    def restore(self, snapshot: Dict[str, Any]) -> None:
        """Restore a :meth:`snapshot` (the open period resumes from now)."""
        self._native.restore(to_json(snapshot, "snapshot"), self._now())

    def __repr__(self) -> str:
        return f"<tripwire.CircuitBreaker {self.name!r} {self.state.value}>"


class Bulkhead(_BlockGuard):
    """A concurrency limit with a FIFO queue (DESIGN §3.4). Sync callers waiting for a slot
    block their thread on a condition variable; async callers await. Also ``with`` /
    ``async with``."""

    def __init__(
        self,
        config: Optional[Union[Dict[str, Any], str]] = None,
        clock: Any = None,
        fallback: Any = None,
        *,
        name: str = "bulkhead",
    ) -> None:
        clock = check_clock(clock)
        text = '{"bulkhead":' + to_json({} if config is None else config) + "}"
        runner = Runner(clock, fallback, Classifier())
        native = _native.Pipeline(text, host_seed(), clock=clock, runner=runner, name=name)
        self._setup(native, runner)
        self._init_block_guard()

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return int(self.stats()["bulkhead"]["inFlight"])

    @property
    def queued(self) -> int:
        """Calls waiting for a slot now."""
        return int(self.stats()["bulkhead"]["queueDepth"])

    def __repr__(self) -> str:
        return f"<tripwire.Bulkhead {self.name!r}>"

