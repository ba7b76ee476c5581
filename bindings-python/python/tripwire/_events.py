"""Events as listeners: ``obj.on("stateChanged", fn)``. The core queues what happened; the
native handle drains it under its lock, and listeners run here, after the lock is released
(so a listener may call back into the same object)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["Event", "EVENT_TYPES", "Listeners"]

_log = logging.getLogger("tripwire")

#: Every event type a policy emits (``"*"`` listens to all of them).
EVENT_TYPES = (
    "stateChanged",
    "rejected",
    "retryScheduled",
    "gaveUp",
    "queued",
    "woken",
    "checkChanged",
    "timedOut",
    "statusChanged",
    "storeStateChanged",
)


class Event:
    """Something that happened in a policy.

    ``type`` is the event's name; ``at`` the clock time (seconds) of the input that caused it.
    The other attributes are ``None`` unless the type carries them:
    ``stateChanged``: ``from_state``, ``to_state``; ``rejected``: ``reason``, ``retry_after``
    (seconds); ``retryScheduled``: ``attempt`` (the attempt that will run), ``delay``
    (seconds); ``gaveUp``: ``reason``, ``attempts``; ``queued``/``woken``: ``ticket``;
    health ``checkChanged``: ``check``, ``from_state``, ``to_state``; ``timedOut``: ``check``;
    ``statusChanged``: ``from_state``, ``to_state``; ``storeStateChanged`` (the breaker
    around a shared store: ``open`` means the store is not asked and ``store.onUnavailable``
    decides): ``from_state``, ``to_state``.
    """

    __slots__ = (
        "type",
        "at",
        "from_state",
        "to_state",
        "reason",
        "retry_after",
        "attempt",
        "delay",
        "attempts",
        "ticket",
        "check",
    )

    type: str
    at: float
    from_state: Optional[str]
    to_state: Optional[str]
    reason: Optional[str]
    retry_after: Optional[float]
    attempt: Optional[int]
    delay: Optional[float]
    attempts: Optional[int]
    ticket: Optional[int]
    check: Optional[str]

    def __init__(self, type: str, at: float, **fields: Any) -> None:  # noqa: A002
        self.type = type
        self.at = at
        for name in self.__slots__[2:]:
            setattr(self, name, fields.get(name))

    def to_dict(self) -> Dict[str, Any]:
        """The event's fields that are set."""
        out: Dict[str, Any] = {"type": self.type, "at": self.at}
        for name in self.__slots__[2:]:
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k not in ("type",))
        return f"Event({self.type!r}, {fields})"


def _s(ns: Optional[int]) -> Optional[float]:
    return None if ns is None else ns / 1e9


def policy_event(t: Tuple[Any, ...]) -> Event:
    """A native policy event tuple ``(type, at_ns, a, b)`` as an :class:`Event`."""
    kind, at, a, b = t
    at_s = at / 1e9
    if kind in ("stateChanged", "storeStateChanged"):
        return Event(kind, at_s, from_state=a, to_state=b)
    if kind == "rejected":
        return Event(kind, at_s, reason=a, retry_after=_s(b))
    if kind == "retryScheduled":
        return Event(kind, at_s, attempt=a, delay=_s(b))
    if kind == "gaveUp":
        return Event(kind, at_s, reason=a, attempts=b)
    if kind in ("queued", "woken"):
        return Event(kind, at_s, ticket=a)
    return Event(kind, at_s)


def health_event(t: Tuple[Any, ...]) -> Event:
    """A native health event tuple ``(type, at_ns, check, from, to)`` as an :class:`Event`."""
    kind, at, check, a, b = t
    return Event(kind, at / 1e9, check=check, from_state=a, to_state=b)


Listener = Callable[[Event], Any]


class Listeners:
    """Listeners by event type. A listener that raises is logged (logger ``"tripwire"``) and
    does not disturb the call that caused the event."""

    __slots__ = ("_by_type", "_on_change")

    def __init__(self, on_change: Callable[[bool], None]) -> None:
        self._by_type: Dict[str, List[Listener]] = {}
        self._on_change = on_change

    def __bool__(self) -> bool:
        return bool(self._by_type)

    def add(self, event: str, listener: Listener) -> None:
        if event != "*" and event not in EVENT_TYPES:
            raise ValueError(f"event: unknown event type {event!r}; expected one of {', '.join(EVENT_TYPES)} or '*'")
        if not callable(listener):
            raise TypeError(f"listener: must be callable, got {type(listener).__name__}")
        was = bool(self._by_type)
        # Copy on write: emit() iterates without a lock while another thread adds.
        self._by_type = {**self._by_type, event: [*self._by_type.get(event, []), listener]}
        if not was:
            self._on_change(True)

    def remove(self, event: str, listener: Listener) -> bool:
        current = self._by_type.get(event, [])
        if listener not in current:
            return False
        rest = [f for f in current if f is not listener and f != listener]
        by_type = dict(self._by_type)
        if rest:
            by_type[event] = rest
        else:
            del by_type[event]
        self._by_type = by_type
        if not by_type:
            self._on_change(False)
        return True

    def emit(self, event: Event) -> None:
        by_type = self._by_type
        for listener in (*by_type.get(event.type, ()), *by_type.get("*", ())):
            try:
                listener(event)
            except Exception:
                _log.exception("tripwire: a listener for %r raised", event.type)
