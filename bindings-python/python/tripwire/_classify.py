"""What the host says about a failure: retryable or not, ignored by the breaker or not, and
the server's Retry-After hint. These are the host's predicates (DESIGN §3.2); the core
decides what follows from them.

Defaults:

* **retryable**: ``ConnectionError`` (refused, reset, aborted, broken pipe) and the
  builtin ``TimeoutError`` (socket timeouts), tripwire's own attempt timeouts, and any error
  whose HTTP status (``status``, ``status_code`` or ``response.status_code``) is 5xx or 429;
* **ignored**: an HTTP status of 4xx other than 408 and 429 - the caller's fault: it neither
  counts against the breaker nor is retried, and it propagates unchanged;
* **retry after**: ``exc.retry_after`` (seconds), or the ``Retry-After`` header of
  ``exc.response.headers`` (delta-seconds or an HTTP date). Duck-typed: no HTTP library is
  imported.

``retry_on`` / ``ignore_on`` override the first two: an exception class, a tuple of classes,
or a predicate ``(exc) -> bool``.
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any, Callable, Optional, Tuple, Type, Union, cast

from . import _native
from .errors import TimeoutError as _TripwireTimeout
from .errors import TripwireError

Predicate = Union[Type[BaseException], Tuple[Type[BaseException], ...], Callable[[BaseException], bool]]

OUTCOME_SUCCESS = _native.OUTCOME_SUCCESS
OUTCOME_FAILURE = _native.OUTCOME_FAILURE
OUTCOME_TIMEOUT = _native.OUTCOME_TIMEOUT
OUTCOME_IGNORED = _native.OUTCOME_IGNORED


def status_of(exc: BaseException) -> Optional[int]:
    """The HTTP status an error carries, if any."""
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "status"):
            v = getattr(holder, attr, None)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
            # http.HTTPStatus and friends are ints; some libraries use strings.
            if isinstance(v, str) and v.isdigit():
                return int(v)
    return None


def default_retryable(exc: BaseException) -> bool:
    """The seed's predicate: network errors, 5xx, 429, and tripwire's own timeouts."""
    if isinstance(exc, TripwireError):
        # A nested pipeline's refusals (open breaker, deadline passed...) are not transient.
        return isinstance(exc, _TripwireTimeout)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = status_of(exc)
    return status is not None and (status >= 500 or status == 429)


def default_ignored(exc: BaseException) -> bool:
    """4xx other than 408 (request timeout) and 429 (too many requests): the caller's fault."""
    status = status_of(exc)
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def _seconds(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        return v if math.isfinite(v) and v >= 0 else None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if isinstance(value, str):
        text = value.strip()
        try:
            v = float(text)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            if when is None:
                return None
            return max(0.0, when.timestamp() - time.time())
        return v if math.isfinite(v) and v >= 0 else None
    return None


def retry_after_of(exc: BaseException) -> Optional[float]:
    """The Retry-After hint of an error, in seconds."""
    hint = _seconds(getattr(exc, "retry_after", None))
    if hint is not None:
        return hint
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        raw = headers.get("Retry-After")
        if raw is None:
            raw = headers.get("retry-after")
    except Exception:  # a headers object we cannot read has no hint
        return None
    return _seconds(raw)


def _predicate(p: Optional[Predicate], default: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    if p is None:
        return default
    if isinstance(p, tuple) or (isinstance(p, type) and issubclass(p, BaseException)):
        classes = p if isinstance(p, tuple) else (p,)
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in classes):
            raise TypeError("retry_on/ignore_on: a tuple must hold exception classes")

        def is_instance(e: BaseException) -> bool:
            return isinstance(e, classes)

        return is_instance
    if callable(p):
        return cast(Callable[[BaseException], bool], p)
    raise TypeError(
        f"retry_on/ignore_on: must be an exception class, a tuple of them or a predicate, got {type(p).__name__}"
    )


class Classifier:
    """``classify(exc) -> (outcome, retryable, retry_after_ns)`` for the core's ``report``."""

    __slots__ = ("retryable", "ignored")

    def __init__(self, retry_on: Optional[Predicate] = None, ignore_on: Optional[Predicate] = None) -> None:
        self.retryable = _predicate(retry_on, default_retryable)
        self.ignored = _predicate(ignore_on, default_ignored)

    def __call__(self, exc: BaseException) -> Tuple[int, bool, Optional[int]]:
        hint = retry_after_of(exc)
        hint_ns = None if hint is None else int(round(hint * 1e9))
        if self.ignored(exc):
            return OUTCOME_IGNORED, False, hint_ns
        return OUTCOME_FAILURE, bool(self.retryable(exc)), hint_ns
