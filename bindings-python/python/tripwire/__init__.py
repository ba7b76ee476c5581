"""tripwire: one fault-tolerance policy engine - circuit breakers, retries, timeouts and
deadlines, bulkheads, rate limits, fallbacks and health checks - decided by a Rust core that
behaves identically in every language, driven here by Python's clock, threads and asyncio.

>>> from tripwire import Pipeline
>>> api = Pipeline({"retry": {"maxRetries": 2}, "circuitBreaker": {}})
>>> @api
... def fetch():
...     return "ok"
>>> fetch()
'ok'
"""

from ._classify import default_ignored, default_retryable, retry_after_of
from ._clock import Clock, SystemClock
from ._events import EVENT_TYPES, Event
from .errors import (
    BudgetExhaustedError,
    BulkheadFullError,
    CircuitOpenError,
    ClockError,
    ConfigError,
    DeadlineExceededError,
    QueueTimeoutError,
    RateLimitedError,
    RetriesExhaustedError,
    TimeoutError,
    TripwireError,
    UsageError,
)
from .health import HealthChecker
from .limiter import KeyedRateLimiter, RateLimitDecision, RateLimiter
from .pipeline import BreakerState, Bulkhead, CircuitBreaker, Pipeline
from .policies import Policies, load_policies

__version__ = "0.1.0"

__all__ = [
    "Pipeline",
    "CircuitBreaker",
    "BreakerState",
    "RateLimiter",
    "KeyedRateLimiter",
    "RateLimitDecision",
    "Bulkhead",
    "HealthChecker",
    "load_policies",
    "Policies",
    "Event",
    "EVENT_TYPES",
    "Clock",
    "SystemClock",
    "default_retryable",
    "default_ignored",
    "retry_after_of",
    "validate",
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


def _check_kinds() -> None:
    # One exhaustive table: every kind the core can fail a call with has a class here.
    from . import _native
    from .errors import KIND_CLASSES

    missing = [k for k in _native.ERROR_KINDS if k != "failure" and k not in KIND_CLASSES]
    if missing:  # pragma: no cover - a core newer than this package
        raise ImportError(f"tripwire: no exception class for the core's kinds {missing}")


_check_kinds()


def validate(config, target: str = "pipeline") -> None:  # type: ignore[no-untyped-def]
    """Validate a config (dict or JSON text) without building anything; raises
    :class:`ConfigError` listing every issue. ``target``: ``"pipeline"`` (default),
    ``"policyFile"``, ``"circuitBreaker"``, ``"retry"``, ``"timeout"``, ``"bulkhead"``,
    ``"rateLimit"``, ``"keyedRateLimit"``, ``"health"``, ``"healthCheck"``, ``"store"``,
    ``"sharedRateLimit"`` (``{"rateLimit", "store", "keyed"?}``)."""
    from . import _native
    from ._config import to_json

    _native.validate(target, to_json(config))
