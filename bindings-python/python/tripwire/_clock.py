"""The clock protocol and the default clock."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Protocol

__all__ = ["Clock", "SystemClock", "check_clock", "host_seed"]


class Clock(Protocol):
    """Any object with these three methods is a clock. ``monotonic()`` returns seconds on a
    clock that does not jump with wall time; ``sleep``/``asleep`` wait (they are called only
    for positive waits)."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The default clock: ``time.monotonic``, ``time.sleep``, ``asyncio.sleep``. (A pipeline
    built with ``clock=None`` reads the same ``CLOCK_MONOTONIC`` natively, in nanoseconds.)"""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def check_clock(clock: Any) -> Any:
    """`clock` if it speaks the protocol (``None`` for the default); else ``TypeError``."""
    if clock is None:
        return None
    missing = [m for m in ("monotonic", "sleep", "asleep") if not callable(getattr(clock, m, None))]
    if missing:
        raise TypeError(
            f"clock: must have monotonic(), sleep(s) and async asleep(s); {type(clock).__name__} lacks {', '.join(missing)}"
        )
    return clock


def host_seed() -> int:
    """Jitter seed for configs without ``seed``: OS randomness (never inside the core)."""
    return int.from_bytes(os.urandom(8), "little")
