"""``load_policies``: a policy file (``{"seed"?, "policies": {name: pipelineConfig}}``) as a
mapping of name to :class:`Pipeline`."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union

from . import _native
from ._classify import Classifier, Predicate
from ._clock import check_clock, host_seed
from ._config import to_json
from ._runner import Runner
from .pipeline import Pipeline, _attach_store

__all__ = ["Policies", "load_policies"]

Source = Union[Mapping[str, Any], str, "os.PathLike[str]", bytes]


class Policies(Mapping[str, Pipeline]):
    """The pipelines of a policy file, by name (a read-only mapping)."""

    def __init__(self, pipelines: Dict[str, Pipeline]) -> None:
        self._pipelines = pipelines

    def __getitem__(self, name: str) -> Pipeline:
        return self._pipelines[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pipelines)

    def __len__(self) -> int:
        return len(self._pipelines)

    def names(self) -> List[str]:
        """The pipelines' names, sorted."""
        return list(self._pipelines)

    def close(self) -> None:
        for p in self._pipelines.values():
            p.close()

    def __repr__(self) -> str:
        return f"<tripwire.Policies {', '.join(self._pipelines)}>"


def _text(source: Source) -> str:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source).decode("utf-8")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return source
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as f:
            return f.read()
    return to_json(source, "policies")


def load_policies(
    source: Source,
    clock: Any = None,
    *,
    fallbacks: Optional[Mapping[str, Any]] = None,
    retry_on: Optional[Predicate] = None,
    ignore_on: Optional[Predicate] = None,
    store: Any = None,
) -> Policies:
    """Load a policy file from a path, JSON text or a dict; every entry becomes a
    :class:`Pipeline` named after it (its ``prometheus()`` label). ``fallbacks`` maps names to
    each pipeline's fallback. ``store``: the Redis client (or adapter) of every pipeline whose
    config has a ``"store"`` (see :class:`Pipeline`). A bad file raises :class:`ConfigError`
    whose path starts with ``policies.<name>``."""
    clock = check_clock(clock)
    file = _native.PolicyFile(_text(source))
    fallbacks = dict(fallbacks or {})
    unknown = set(fallbacks) - set(file.names())
    if unknown:
        raise KeyError(f"fallbacks: no policy named {sorted(unknown)[0]!r}")
    pipelines: Dict[str, Pipeline] = {}
    for name in file.names():
        runner = Runner(clock, fallbacks.get(name), Classifier(retry_on, ignore_on))
        native = file.pipeline(name, host_seed(), clock=clock, runner=runner)
        pipelines[name] = Pipeline._from_native(native, runner)
        if store is not None and native.store_timeout() is not None:
            _attach_store(native, runner, store)
    return Policies(pipelines)
