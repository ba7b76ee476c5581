"""Test helpers: :class:`FakeClock`, a clock whose time moves only when told to."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
from typing import Any, List, Optional, Tuple

__all__ = ["FakeClock"]


class FakeClock:
    """A clock for tests (``Pipeline(config, clock=FakeClock())``).

    * ``monotonic()`` returns the fake time (seconds, starting at ``start``).
    * ``sleep(s)`` moves the time on by ``s`` at once (sync code has no one else to do it).
    * ``await asleep(s)`` waits until the fake time reaches now + ``s``: time moves by
      :meth:`advance`, by ``sleep``, or - with ``autojump`` (the default) - by itself once
      every task of the loop has been idle for a few iterations, to the earliest sleeper's
      wake-up (as trio's ``MockClock(autojump_threshold=0)``). So an async retry with a
      30 s backoff finishes at once, and a timeout fires before a slower fake operation.
    * ``sleeps`` records every requested sleep, for assertions.

    Thread-safe: ``advance`` may be called from any thread.
    """

    #: Loop iterations with nothing else to do before an autojump.
    IDLE_ROUNDS = 8

    def __init__(self, start: float = 0.0, *, autojump: bool = True) -> None:
        if not isinstance(start, (int, float)) or not math.isfinite(start) or start < 0:
            raise ValueError(f"start: must be a finite number of seconds >= 0, got {start!r}")
        self._now = float(start)
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._waiters: List[Tuple[float, int, asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = []
        self._jumpers: "dict[asyncio.AbstractEventLoop, asyncio.Task[None]]" = {}
        self.autojump = autojump
        self.sleeps: List[float] = []

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the time on by ``seconds`` (>= 0) and wake the sleepers that are due."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds: must be a finite number >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds
        self._wake_due()

    def set(self, now: float) -> None:
        """Set the time (may go backwards: useful to test a clock that steps back)."""
        with self._lock:
            self._now = float(now)
        self._wake_due()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        with self._lock:
            heapq.heappush(self._waiters, (self._now + seconds, next(self._seq), loop, fut))
        if self.autojump:
            self._ensure_jumper(loop)
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    def _wake_due(self) -> None:
        due: List[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = []
        with self._lock:
            while self._waiters and (self._waiters[0][0] <= self._now or self._waiters[0][3].done()):
                _, _, loop, fut = heapq.heappop(self._waiters)
                due.append((loop, fut))
        for loop, fut in due:
            try:
                loop.call_soon_threadsafe(_set, fut)
            except RuntimeError:  # that loop is closed
                pass

    def _next_wakeup(self, loop: asyncio.AbstractEventLoop) -> Optional[float]:
        with self._lock:
            live = [w for w in self._waiters if not w[3].done() and w[2] is loop]
            return min((w[0] for w in live), default=None)

    def _ensure_jumper(self, loop: asyncio.AbstractEventLoop) -> None:
        task = self._jumpers.get(loop)
        if task is None or task.done():
            self._jumpers[loop] = loop.create_task(self._jump(loop))

    async def _jump(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            for _ in range(self.IDLE_ROUNDS):
                await asyncio.sleep(0)
            target = self._next_wakeup(loop)
            if target is None:
                return
            with self._lock:
                if target > self._now:
                    self._now = target
            self._wake_due()


def _set(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)
