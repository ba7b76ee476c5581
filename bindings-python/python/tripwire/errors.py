"""The exception hierarchy: every error tripwire raises derives from :class:`TripwireError`
and carries ``code``, the error kind's name shared by every language (``"circuitOpen"``...).

Errors also inherit the builtin a Python user would reach for: :class:`TimeoutError` and
:class:`DeadlineExceededError` are builtin ``TimeoutError`` s, :class:`ConfigError` and
:class:`ClockError` are ``ValueError`` s, :class:`UsageError` is a ``RuntimeError``.
"""

from __future__ import annotations

import builtins
from typing import Dict, List, Optional, Sequence, Tuple, Type

__all__ = [
    "TripwireError",
    "CircuitOpenError",
    "BulkheadFullError",
    "QueueTimeoutError",
    "RateLimitedError",
    "TimeoutError",
    "RetriesExhaustedError",
    "BudgetExhaustedError",
    "DeadlineExceededError",
    "ConfigError",
    "UsageError",
    "ClockError",
]


class TripwireError(Exception):
    """Base of every tripwire error.

    ``code`` is the kind (``"circuitOpen"``, ``"rateLimited"``...). ``retry_after`` is the
    number of seconds after which the same call could pass, where known, else ``None``.
    ``attempts`` counts the attempts the call made, the first included (0 when it was
    refused before any attempt).
    """

    code: str = "tripwire"

    def __init__(
        self,
        message: str = "",
        *,
        retry_after: Optional[float] = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message or self.code)
        self.retry_after = retry_after
        self.attempts = attempts


class CircuitOpenError(TripwireError):
    """The circuit breaker is open (or forced open, or every half-open trial slot is taken)."""

    code = "circuitOpen"


class BulkheadFullError(TripwireError):
    """The bulkhead has no free slot and no queue place."""

    code = "bulkheadFull"


class QueueTimeoutError(TripwireError):
    """The call waited in the bulkhead queue longer than ``maxWait`` (or its deadline)."""

    code = "queueTimeout"


class RateLimitedError(TripwireError):
    """A rate limit (or a server's Retry-After pushback) refused the call."""

    code = "rateLimited"


class TimeoutError(TripwireError, builtins.TimeoutError):  # noqa: A001 - the name is the contract
    """An attempt ran past its per-attempt timeout. Also a builtin ``TimeoutError``."""

    code = "timeout"


class RetriesExhaustedError(TripwireError):
    """Every allowed attempt failed. ``attempts`` counts them; ``__cause__`` is the last error."""

    code = "retriesExhausted"


class BudgetExhaustedError(TripwireError):
    """The pipeline's shared retry budget refused a retry. ``__cause__`` is the last error."""

    code = "budgetExhausted"


class DeadlineExceededError(TripwireError, builtins.TimeoutError):
    """The call's deadline passed, or the next retry could not start before it."""

    code = "deadlineExceeded"


class ConfigError(TripwireError, ValueError):
    """A configuration was refused. ``issues`` lists every ``(path, reason)``; ``path`` and
    ``reason`` are the first one's (``"circuitBreaker.halfOpen.permittedCalls"``,
    ``"must be >= 1, got 0"``)."""

    code = "invalidConfig"

    def __init__(self, message: str, issues: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.issues: List[Tuple[str, str]] = [(str(p), str(r)) for p, r in issues]
        if not self.issues:
            self.issues = [("", message)]
        self.path: str = self.issues[0][0]
        self.reason: str = self.issues[0][1]

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.issues))


class UsageError(TripwireError, RuntimeError):
    """Misuse of a live object: a closed object, a finished call handle, an unknown check.
    ``reason`` says which (``"closed"``, ``"unknownCall"``, ``"unknownCheck"``...)."""

    code = "usage"

    def __init__(self, message: str, reason: str = "usage") -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.reason))


class ClockError(TripwireError, ValueError):
    """A clock returned something that is not an instant (NaN, infinite, negative, not a
    number)."""

    code = "invalidClock"

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self),))


#: The class raised for each call-failure kind; ``"failure"`` (the function's own error,
#: re-raised unchanged) and ``"invalidConfig"`` are handled apart.
KIND_CLASSES: Dict[str, Type[TripwireError]] = {
    "circuitOpen": CircuitOpenError,
    "bulkheadFull": BulkheadFullError,
    "queueTimeout": QueueTimeoutError,
    "rateLimited": RateLimitedError,
    "timeout": TimeoutError,
    "retriesExhausted": RetriesExhaustedError,
    "budgetExhausted": BudgetExhaustedError,
    "deadlineExceeded": DeadlineExceededError,
    "invalidConfig": ConfigError,
}

_MESSAGES = {
    "circuitOpen": "the circuit breaker is open",
    "bulkheadFull": "the bulkhead is full",
    "queueTimeout": "timed out waiting in the bulkhead queue",
    "rateLimited": "rate limited",
    "timeout": "the attempt timed out",
    "retriesExhausted": "retries exhausted",
    "budgetExhausted": "the retry budget is exhausted",
    "deadlineExceeded": "the call's deadline passed",
}


def kind_error(kind: str, retry_after: Optional[float], attempts: int) -> TripwireError:
    """The error of a failed call of ``kind``."""
    cls = KIND_CLASSES[kind]
    message = _MESSAGES.get(kind, kind)
    if attempts:
        message += f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    if retry_after is not None:
        message += f" (retry after {retry_after:.3f}s)"
    return cls(message, retry_after=retry_after, attempts=attempts)
