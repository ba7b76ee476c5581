"""The host side of the step protocol: the run loops (sync and asyncio), waits, wakes,
fallbacks and error mapping. The native fast path hands a call here at its first surprise;
``call_async`` runs here from the start.

Every decision comes from the core: this module only does what a step says (run the
function, sleep, wait for a wake, return, raise) and reports what happened.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Optional, Sequence, Set, Tuple, TypeVar

from . import _native
from ._native import Pipeline as NativePipeline
from ._classify import OUTCOME_SUCCESS, OUTCOME_TIMEOUT, Classifier
from ._events import Listeners, policy_event
from .errors import TripwireError, UsageError, kind_error

ATTEMPT = _native.STEP_ATTEMPT
SLEEP = _native.STEP_SLEEP
PARK = _native.STEP_PARK
DONE = _native.STEP_DONE
FAIL = _native.STEP_FAIL
STORE = _native.STEP_STORE

#: The reply to a store request nobody can run (no store client), or that ran out of time.
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"

KINDS: Tuple[str, ...] = tuple(_native.ERROR_KINDS)

T = TypeVar("T")

#: The step of an attempt the fast path ran inline (no deadline).
_INLINE_ATTEMPT: Tuple[Any, ...] = (ATTEMPT, 0, None)


#: How long past a store request's timeout the runner waits for an async adapter that does
#: not declare ``enforces_timeout`` (or for a sync one in a worker thread) before it reports
#: the timeout itself.
STORE_GRACE = 0.002

if sys.version_info >= (3, 11):

    async def within(seconds: float, aw: Awaitable[T]) -> T:
        """``await aw``, cancelled after ``seconds`` (``asyncio.TimeoutError``)."""
        async with asyncio.timeout(seconds):
            return await aw

else:  # pragma: no cover - exercised on 3.9/3.10

    async def within(seconds: float, aw: Awaitable[T]) -> T:
        """``await aw``, cancelled after ``seconds`` (``asyncio.TimeoutError``)."""
        return await asyncio.wait_for(aw, seconds)


def _normalize_fallbacks(fallback: Any) -> Tuple[Any, ...]:
    if fallback is None:
        return ()
    if isinstance(fallback, (list, tuple)):
        return tuple(fallback)
    return (fallback,)


def _resolve(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


async def _settle(task: "asyncio.Future[Any]") -> None:
    """Wait until a cancelled task has finished, and mark its outcome as seen."""
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()


class Hub:
    """Receives a native handle's buffered events after its lock is released."""

    __slots__ = ("listeners", "_native_ref")

    def __init__(self) -> None:
        self.listeners = Listeners(self._listening)
        self._native_ref: Any = None

    def attach(self, native: Any) -> None:
        self._native_ref = native

    def _listening(self, on: bool) -> None:
        if self._native_ref is not None:
            self._native_ref.set_listening(on)

    def flush(self, native: Any) -> None:
        if self.listeners:
            for t in native.take_events():
                self.listeners.emit(policy_event(t))


class Runner(Hub):
    """One per pipeline: the run loops plus the waiters of its bulkhead queue.

    Waking: the core grants a queued call its slot inside some other call's native input;
    that input's ``flush`` bumps ``generation`` and wakes every waiter. A waiter reads the
    generation *before* polling, so a grant between its poll and its wait is never lost.
    """

    __slots__ = (
        "clock",
        "fallbacks",
        "classify",
        "cond",
        "generation",
        "futures",
        "_sleep",
        "_asleep",
        "store",
        "store_async",
    )

    def __init__(self, clock: Any, fallback: Any, classify: Classifier) -> None:
        super().__init__()
        #: The store adapter for a shared rate limit (``None``: every request is unavailable).
        self.store: Any = None
        self.store_async = False
        self.clock = clock
        self.fallbacks = _normalize_fallbacks(fallback)
        self.classify = classify
        self.cond = threading.Condition(threading.Lock())
        self.generation = 0
        self.futures: Dict[int, Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = {}
        self._sleep: Callable[[float], Any] = time.sleep if clock is None else clock.sleep
        self._asleep: Callable[[float], Any] = asyncio.sleep if clock is None else clock.asleep

    # -- the hook the native handle calls after releasing its lock -----------------------

    def flush(self, native: Any) -> None:
        wakes = native.take_wakes()
        if wakes:
            self._deliver(wakes)
        if self.listeners:
            for t in native.take_events():
                self.listeners.emit(policy_event(t))

    def _deliver(self, wakes: Sequence[int]) -> None:
        with self.cond:
            self.generation += 1
            for call in wakes:
                entry = self.futures.pop(call, None)
                if entry is not None:
                    loop, fut = entry
                    try:
                        loop.call_soon_threadsafe(_resolve, fut)
                    except RuntimeError:  # its loop is closed: nobody waits any more
                        pass
            self.cond.notify_all()

    def wake_all(self) -> None:
        """Wake every waiter so that it polls again (after ``close``: it then raises)."""
        with self.cond:
            futures = list(self.futures.values())
            self.futures.clear()
        for loop, fut in futures:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:
                pass
        self._deliver(())

    # -- outcomes ------------------------------------------------------------------------

    def _report_error(self, native: NativePipeline, call: int, attempt: Tuple[Any, ...], exc: BaseException) -> Tuple[Any, ...]:
        """Report a failed attempt (the error `exc`); returns the next step."""
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit, CancelledError: the caller cancels
        now = native.now()
        deadline = attempt[2]
        if deadline is not None and now >= deadline:
            return native.finish(call, OUTCOME_TIMEOUT, True, None, now)
        outcome, retryable, hint = self.classify(exc)
        return native.finish(call, outcome, retryable, hint, now)

    def _error(self, step: Tuple[Any, ...], last: Optional[BaseException]) -> BaseException:
        """The exception a `Fail` step stands for."""
        _, code, retry_after, attempts, _fallback, cause = step
        kind = KINDS[code - 1]
        if kind == "failure":
            if last is not None:
                return last
            return TripwireError("the call failed", attempts=attempts)
        err = kind_error(kind, None if retry_after is None else retry_after / 1e9, attempts)
        if cause is not None:
            cause_kind = KINDS[cause - 1]
            if cause_kind == "failure" and last is not None:
                err.__cause__ = last
            elif cause_kind != "failure":
                err.__cause__ = kind_error(cause_kind, None, 0)
        return err

    # -- sync ------------------------------------------------------------------------------

    def resume(
        self,
        native: NativePipeline,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Optional[Dict[str, Any]],
        call: int,
        step: Tuple[Any, ...],
        exc: Optional[BaseException],
    ) -> Any:
        """Continue a call the native fast path handed over: `step` is its current step, or
        the attempt during which `fn` raised `exc`."""
        return self.drive(native, fn, args, kwargs or {}, call, step, exc)

    def run(self, native: NativePipeline, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any], deadline: Optional[int] = None) -> Any:
        call, step = native.start(native.now(), deadline)
        return self.drive(native, fn, args, kwargs, call, step, None)

    def drive(
        self,
        native: NativePipeline,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        call: int,
        step: Tuple[Any, ...],
        exc: Optional[BaseException],
    ) -> Any:
        last: Optional[BaseException] = None
        live = True
        try:
            if exc is not None:
                last = exc
                step = self._report_error(native, call, step, exc)
            while True:
                tag = step[0]
                if tag == ATTEMPT:
                    try:
                        value = fn(*args, **kwargs)
                    except Exception as e:  # noqa: BLE001 - the function's error is data here
                        last = e
                        step = self._report_error(native, call, step, e)
                        continue
                    now = native.now()
                    deadline = step[2]
                    if deadline is not None and now >= deadline:
                        # Sync code cannot be interrupted: its timeout is checked when it returns.
                        step = native.finish(call, OUTCOME_TIMEOUT, True, None, now)
                        continue
                    step = native.finish(call, OUTCOME_SUCCESS, False, None, now)
                    if step[0] == DONE:
                        live = False
                        return value
                elif tag == FAIL:
                    live = False
                    return self._fail(step, last)
                elif tag == SLEEP:
                    remaining = step[1] - native.now()
                    if remaining > 0:
                        self._sleep(remaining / 1e9)
                    step = native.poll(call, native.now())
                elif tag == PARK:
                    step = self._park(native, call)
                elif tag == STORE:
                    step = self._store(native, call, step)
                else:  # DONE without a success report cannot happen; anything else is a bug
                    live = tag != DONE
                    raise UsageError(f"unexpected step {step!r}", "unknownStep")
        except BaseException:
            if live:
                self._cancel(native, call)
            raise

    @staticmethod
    def _cancel(native: NativePipeline, call: int) -> None:
        try:
            native.cancel(call, native.now())
        except Exception:  # closed, or a broken clock: nothing is left to release
            try:
                native.cancel(call, 0)
            except Exception:
                pass

    def _store(self, native: NativePipeline, call: int, step: Tuple[Any, ...]) -> Tuple[Any, ...]:
        """Run the call's store request once, within its timeout; the next step."""
        until, request_id = step[1], step[2]
        request = native.store_request(request_id)
        store = self.store
        if store is None or request is None:
            return native.store_finish(call, UNAVAILABLE, native.now())
        if self.store_async:
            raise UsageError(
                "this pipeline's store is an asyncio client: use call_async or an async function, "
                "or pass a sync redis.Redis",
                "asyncStore",
            )
        left = until - native.now()
        reply = store.run(request, left / 1e9) if left > 0 else TIMEOUT
        return self._store_reply(native, call, until, reply)

    @staticmethod
    def _store_reply(native: NativePipeline, call: int, until: int, reply: Any) -> Tuple[Any, ...]:
        now = native.now()
        if now >= until:
            # Too late: the reply is dropped, never applied; polling past `until` makes the
            # core count the request as timed out.
            return native.poll(call, now)
        return native.store_finish(call, reply, now)

    def _park(self, native: NativePipeline, call: int) -> Tuple[Any, ...]:
        """Block this thread until the call is woken or its wait ends (no spinning)."""
        cond = self.cond
        while True:
            generation = self.generation
            step = native.poll(call, native.now())
            if step[0] != PARK:
                return step
            until = step[1]
            notified = True
            with cond:
                if self.generation == generation:
                    if until is None:
                        cond.wait()
                    else:
                        remaining = until - native.now()
                        if remaining > 0:
                            notified = cond.wait(remaining / 1e9)
            if not notified and self.clock is not None:
                # The wait ran out in real time; a custom (fake) clock may lag: move it on.
                remaining = until - native.now()
                if remaining > 0:
                    self._sleep(remaining / 1e9)

    def _fail(self, step: Tuple[Any, ...], last: Optional[BaseException]) -> Any:
        err = self._error(step, last)
        if step[4] and self.fallbacks:
            return self._fallback(err)
        raise err

    def _fallback(self, err: BaseException) -> Any:
        chain = self.fallbacks
        for i, fb in enumerate(chain):
            if not callable(fb):
                return fb
            try:
                result = fb(err)
            except Exception as e:
                if i == len(chain) - 1:
                    if e.__context__ is None:
                        e.__context__ = err
                    raise
                continue
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError("fallback: an async fallback needs call_async or an async function")
            return result
        raise err

    # -- asyncio ---------------------------------------------------------------------------

    async def run_async(
        self,
        native: NativePipeline,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        deadline: Optional[int] = None,
    ) -> Any:
        call, step = native.start(native.now(), deadline)
        return await self.drive_async(native, fn, args, kwargs, call, step, None)

    async def run_coroutine(
        self,
        native: NativePipeline,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
    ) -> Any:
        """The decorator's path for ``async def``: an attempt without a deadline is awaited
        inline between two native calls; anything else goes through :meth:`drive_async`."""
        entered = native.enter()
        if entered.__class__ is not int:
            return await self.drive_async(native, fn, args, kwargs, entered[0], entered[1], None)
        try:
            value = await fn(*args, **kwargs)
        except BaseException as e:
            return await self.drive_async(native, fn, args, kwargs, entered, _INLINE_ATTEMPT, e)
        step = native.succeed(entered)
        if step is None:
            return value
        return await self.drive_async(native, fn, args, kwargs, entered, step, None)

    async def drive_async(
        self,
        native: NativePipeline,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        call: int,
        step: Tuple[Any, ...],
        exc: Optional[BaseException],
    ) -> Any:
        last: Optional[BaseException] = None
        live = True
        try:
            if exc is not None:
                last = exc
                step = self._report_error(native, call, step, exc)
            while True:
                tag = step[0]
                if tag == ATTEMPT:
                    try:
                        value, timed_out = await self._attempt(native, fn, args, kwargs, step[2])
                    except Exception as e:  # noqa: BLE001
                        last = e
                        step = self._report_error(native, call, step, e)
                        continue
                    now = native.now()
                    deadline_ns = step[2]
                    if timed_out or (deadline_ns is not None and now >= deadline_ns):
                        step = native.finish(call, OUTCOME_TIMEOUT, True, None, now)
                        continue
                    step = native.finish(call, OUTCOME_SUCCESS, False, None, now)
                    if step[0] == DONE:
                        live = False
                        return value
                elif tag == FAIL:
                    live = False
                    return await self._fail_async(step, last)
                elif tag == SLEEP:
                    remaining = step[1] - native.now()
                    if remaining > 0:
                        await self._asleep(remaining / 1e9)
                    step = native.poll(call, native.now())
                elif tag == PARK:
                    step = await self._park_async(native, call)
                elif tag == STORE:
                    step = await self._store_async(native, call, step)
                else:
                    live = tag != DONE
                    raise UsageError(f"unexpected step {step!r}", "unknownStep")
        except BaseException:
            if live:
                self._cancel(native, call)
            raise

    async def _attempt(
        self,
        native: NativePipeline,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        deadline: Optional[int],
    ) -> Tuple[Any, bool]:
        """Run one attempt; `(value, timed_out)`. With a deadline the attempt runs as a task
        that is cancelled at the deadline, and the call goes on only once it has finished."""
        result = fn(*args, **kwargs)
        if not inspect.isawaitable(result):
            return result, False
        if deadline is None:
            return await result, False
        task: "asyncio.Future[Any]" = asyncio.ensure_future(result)
        remaining = max(0, deadline - native.now()) / 1e9
        timer: Optional["asyncio.Future[Any]"] = None
        done: "Set[asyncio.Future[Any]]"
        try:
            if self.clock is None:
                done, _ = await asyncio.wait({task}, timeout=remaining)
            else:
                timer = asyncio.ensure_future(self._asleep(remaining))
                done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # The caller was cancelled (or interrupted): cancel the attempt and wait until it
            # has finished before the call gives up its bulkhead slot, as `asyncio.wait_for`
            # does; otherwise a queued call could start while this one still runs its
            # clean-up, one more than `maxConcurrent`. (Cancelled again meanwhile: stop waiting.)
            task.cancel()
            if timer is not None:
                timer.cancel()
            await _settle(task)
            raise
        if timer is not None and not timer.done():
            timer.cancel()
            await _settle(timer)
        if task in done:
            return task.result(), False
        task.cancel()
        await _settle(task)
        return None, True

    async def _store_async(self, native: NativePipeline, call: int, step: Tuple[Any, ...]) -> Tuple[Any, ...]:
        """Await the call's store request (a sync adapter runs in the default executor, so the
        loop never blocks on a socket); the next step. A cancelled call abandons it."""
        until, request_id = step[1], step[2]
        request = native.store_request(request_id)
        store = self.store
        if store is None or request is None:
            return native.store_finish(call, UNAVAILABLE, native.now())
        left = (until - native.now()) / 1e9
        if left <= 0:
            return self._store_reply(native, call, until, TIMEOUT)
        if self.store_async:
            if getattr(store, "enforces_timeout", False):
                # It reports its own timeouts (and counts them): no second clock on top.
                return self._store_reply(native, call, until, await store.run(request, left))
            work = store.run(request, left)
        else:

            def job() -> Any:
                # Time spent queued for a worker thread counts: never send a stale request.
                left = until - native.now()
                return store.run(request, left / 1e9) if left > 0 else TIMEOUT

            work = asyncio.get_running_loop().run_in_executor(None, job)
        try:
            # Bounds an adapter that ignores its timeout, and the wait for a worker thread.
            reply: Any = await within(left + STORE_GRACE, work)
        except asyncio.TimeoutError:
            reply = TIMEOUT
        return self._store_reply(native, call, until, reply)

    async def _park_async(self, native: NativePipeline, call: int) -> Tuple[Any, ...]:
        """Await a wake (or the wait's end) without blocking the loop or a thread."""
        loop = asyncio.get_running_loop()
        while True:
            generation = self.generation
            step = native.poll(call, native.now())
            if step[0] != PARK:
                return step
            until = step[1]
            fut: "asyncio.Future[None]" = loop.create_future()
            with self.cond:
                if self.generation != generation:
                    continue
                self.futures[call] = (loop, fut)
            try:
                if until is None:
                    await fut
                    continue
                remaining = max(0, until - native.now()) / 1e9
                if self.clock is None:
                    await asyncio.wait({fut}, timeout=remaining)
                else:
                    timer = asyncio.ensure_future(self._asleep(remaining))
                    try:
                        await asyncio.wait({fut, timer}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        timer.cancel()
            finally:
                with self.cond:
                    entry = self.futures.get(call)
                    if entry is not None and entry[1] is fut:
                        del self.futures[call]

    async def _fail_async(self, step: Tuple[Any, ...], last: Optional[BaseException]) -> Any:
        err = self._error(step, last)
        if not (step[4] and self.fallbacks):
            raise err
        chain = self.fallbacks
        for i, fb in enumerate(chain):
            if not callable(fb):
                return fb
            try:
                result = fb(err)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as e:
                if i == len(chain) - 1:
                    if e.__context__ is None:
                        e.__context__ = err
                    raise
                continue
            return result
        raise err
