"""Config values (dicts with the JSON shape used in every language) to JSON text."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Union

from .errors import ConfigError

ConfigLike = Union[Mapping[str, Any], str, bytes]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(value: Any, path: str) -> None:
    """Refuse what JSON cannot say, naming the field (the core names everything else)."""
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(
                f"{path or 'config'}: must be a finite number, got {value}",
                [(path, f"must be a finite number, got {value}")],
            )
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                reason = f"keys must be strings, got {type(k).__name__} {k!r}"
                raise ConfigError(f"{path or 'config'}: {reason}", [(path, reason)])
            _check(v, _join(path, k))
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]")
        return
    reason = f"not a JSON value: {type(value).__name__}"
    raise ConfigError(f"{path or 'config'}: {reason}", [(path, reason)])


def to_json(config: Any, what: str = "config") -> str:
    """A config dict (or JSON text) as JSON text for the core.

    Raises :class:`TypeError` for something that is not a config at all, and
    :class:`~tripwire.ConfigError` (with the field path) for values JSON cannot carry.
    """
    if isinstance(config, str):
        return config
    if isinstance(config, (bytes, bytearray)):
        return bytes(config).decode("utf-8")
    if not isinstance(config, (Mapping, list, tuple)):
        raise TypeError(f"{what}: must be a dict (or JSON text), got {type(config).__name__}")
    _check(config, "")
    return json.dumps(config, separators=(",", ":"), allow_nan=False)
