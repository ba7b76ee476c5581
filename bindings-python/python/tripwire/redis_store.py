"""Run tripwire's store requests on Redis (or Valkey) with redis-py, the client you already
have: a rate limit shared by every instance of a service (``"store"`` in a pipeline config).

tripwire never opens a connection behind your back: you pass your client, and each request
runs on it once. The adapters are script-agnostic (they run any request the core emits) and
keep the rules every Redis adapter of tripwire keeps:

* ``EVALSHA``; on ``NOSCRIPT``, and only then, ``EVAL`` once (which also loads the script).
* Never resend: a timeout is reported as ``"timeout"``, a refused or dropped connection as
  ``"unavailable"``, and the connection is dropped (a late reply must not answer the next
  request). So the client's own retries must be off: a client that would retry is refused,
  naming the setting. redis-py has no offline queue.
* The request's timeout is enforced: ``AsyncRedisStore`` cancels the command at the deadline
  (``asyncio`` timeouts); ``RedisStore`` (threads) reads the reply with the time left as its
  socket timeout. A sync socket cannot be interrupted while it connects or sends, so a sync
  client must have ``socket_timeout`` and ``socket_connect_timeout`` no longer than the store
  timeout (checked when the pipeline is built).
* ``CROSSSLOT``, ``NOPERM``, ``WRONGTYPE`` and any other error reply are deployment mistakes,
  reported as ``("failed", message)``: they do not open the store breaker.

Configure the client like this (a client for tripwire, or one whose settings suit it)::

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(host="127.0.0.1", socket_timeout=0.025,
                         socket_connect_timeout=0.025, retry=Retry(NoBackoff(), 0))

    import redis.asyncio
    from redis.asyncio.retry import Retry as AsyncRetry

    aclient = redis.asyncio.Redis(host="127.0.0.1", retry=AsyncRetry(NoBackoff(), 0))

For an asyncio client ``socket_timeout`` may be longer than the store timeout, or ``None``
(the adapter's own timeout cancels the command); a shorter one only gives up sooner. Redis
Cluster clients are not supported yet.

A reply, in every adapter, is the script's array of integers, ``"timeout"``,
``"unavailable"``, ``"noScript"`` or ``("failed", message)``. Any object with
``run(request, timeout)`` (sync) or ``async run(request, timeout)`` is an adapter too; it
should give up after ``timeout`` seconds (a pipeline stops waiting for an async adapter 2 ms
later unless it sets ``enforces_timeout = True``, and drops any reply that comes after the
request's deadline).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Type, Union

from . import _native
from ._runner import within

__all__ = ["RedisStore", "AsyncRedisStore", "Script", "StoreReply", "scripts", "store_adapter"]

#: What an adapter returns for a request.
StoreReply = Union[List[int], str, Tuple[str, str]]

TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
NO_SCRIPT = "noScript"


class Script(NamedTuple):
    """A script the store may be asked to run (``SCRIPT LOAD`` it at start if you like)."""

    name: str
    sha1: str
    source: str


def scripts() -> List[Script]:
    """Every script tripwire's store requests use."""
    return [Script(*s) for s in _native.scripts()]


def _redis() -> Any:
    try:
        import redis
    except ImportError as e:  # pragma: no cover - the tests install redis
        raise ImportError("tripwire.redis_store needs redis-py: pip install redis") from e
    return redis


def _client_class(module: str, name: str) -> Optional[type]:
    """A class of redis-py if the user has imported that module (never imports it)."""
    m = sys.modules.get(module)
    cls = getattr(m, name, None) if m is not None else None
    return cls if isinstance(cls, type) else None


def _is(obj: Any, module: str, name: str) -> bool:
    cls = _client_class(module, name)
    return cls is not None and isinstance(obj, cls)


def _probe(client: Any) -> Any:
    """A connection object with the client's settings, never connected: redis-py derives the
    effective retry and timeouts from several arguments, so ask it rather than re-derive."""
    conn = getattr(client, "connection", None)  # single_connection_client
    if conn is not None:
        return conn
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


def _refuse_retries(client: Any) -> None:
    retries = _probe(client).retry.get_retries()
    if retries != 0:
        times = "forever" if retries < 0 else f"up to {retries} time{'s' if retries != 1 else ''}"
        retry_mod = "redis.asyncio.retry" if _is(client, "redis.asyncio.client", "Redis") else "redis.retry"
        raise ValueError(
            f"store: this redis client would resend a command {times} after a timeout or a dropped "
            "connection (its `retry` setting, or `retry_on_error` / `retry_on_timeout`), which "
            "could count one call twice; create it with retry=Retry(NoBackoff(), 0) "
            f"(from {retry_mod} import Retry; from redis.backoff import NoBackoff)"
        )


def _seconds(v: Any) -> str:
    return "None (no limit)" if v is None else f"{v} s"


class _Counters:
    """What an adapter did, for metrics and for tests that count round trips."""

    _lock: threading.Lock
    sent: int
    evals: int
    timeouts: int
    unavailable: int
    failed: int

    def _init_counters(self) -> None:
        self._lock = threading.Lock()
        self.sent = self.evals = self.timeouts = self.unavailable = self.failed = 0

    def _bump(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def counters(self) -> Dict[str, int]:
        """``{"sent", "evals", "timeouts", "unavailable", "failed"}``: requests sent (each
        once), ``EVAL`` s after ``NOSCRIPT``, and the replies that were not the script's."""
        with self._lock:
            return {k: getattr(self, k) for k in ("sent", "evals", "timeouts", "unavailable", "failed")}

    def _error(self, e: BaseException) -> StoreReply:
        """A redis-py error as a reply (the one table; order matters: subclasses first)."""
        x = _redis().exceptions
        if isinstance(e, (x.TimeoutError, TimeoutError)):
            self._bump("timeouts")
            return TIMEOUT
        if isinstance(e, (x.AuthenticationError, x.AuthorizationError)):
            # A wrong password or ACL is a deployment mistake, not an outage.
            self._bump("failed")
            return ("failed", str(e) or type(e).__name__)
        if isinstance(e, (x.ConnectionError, x.InvalidResponse, OSError)):
            self._bump("unavailable")
            return UNAVAILABLE
        if isinstance(e, x.NoScriptError):  # NOSCRIPT even after EVAL
            self._bump("failed")
            return NO_SCRIPT
        self._bump("failed")
        return ("failed", str(e) or type(e).__name__)

    def _values(self, reply: Any) -> StoreReply:
        if isinstance(reply, list) and all(type(v) is int for v in reply):
            return reply
        self._bump("failed")
        return ("failed", f"the script replied {reply!r:.200}, not an array of integers")


def _errors() -> Tuple[Type[BaseException], ...]:
    redis = _redis()
    return (redis.exceptions.RedisError, OSError)


class RedisStore(_Counters):
    """Runs store requests on a sync ``redis.Redis`` client (thread-safe: each request takes
    a connection from the client's pool for its round trip).

    ``timeout``: the store timeout (seconds) the client must honour; ``Pipeline(config,
    store=client)`` passes the config's. The client's ``socket_timeout`` and
    ``socket_connect_timeout`` must be set and no longer than it; its retries must be off.
    """

    def __init__(self, client: Any, *, timeout: Optional[float] = None) -> None:
        redis = _redis()
        if _is(client, "redis.asyncio.client", "Redis"):
            raise TypeError("store: an asyncio client needs AsyncRedisStore (or pass it to Pipeline(store=...))")
        if _is(client, "redis.cluster", "RedisCluster"):
            raise TypeError("store: Redis Cluster clients are not supported yet; pass a redis.Redis")
        if not isinstance(client, redis.Redis):
            raise TypeError(f"store: must be a redis.Redis client, got {type(client).__name__}")
        _refuse_retries(client)
        self._client = client
        self._pool = client.connection_pool
        probe = _probe(client)
        self._timed_reads = "timeout" in inspect.signature(type(probe).read_response).parameters
        self._single_lock = getattr(client, "single_connection_lock", None) or threading.RLock()
        self._init_counters()
        if timeout is not None:
            self.check_timeout(timeout)

    @property
    def client(self) -> Any:
        return self._client

    def check_timeout(self, timeout: float) -> None:
        """Refuse a client whose socket could block longer than ``timeout`` seconds."""
        probe = _probe(self._client)
        for name, value in (
            ("socket_timeout", probe.socket_timeout),
            ("socket_connect_timeout", getattr(probe, "socket_connect_timeout", probe.socket_timeout)),
        ):
            if value is None or value > timeout + 1e-9:
                raise ValueError(
                    f"store: the redis client's {name} is {_seconds(value)}, longer than the store "
                    f"timeout ({timeout} s): a sync socket cannot be interrupted, so a stalled Redis "
                    f"would hold each call that long. Create the client with socket_timeout={timeout} "
                    f"and socket_connect_timeout={timeout} (or use redis.asyncio)"
                )

    def run(self, request: Any, timeout: Optional[float] = None) -> StoreReply:
        """Run ``request`` once, within ``timeout`` seconds (default: the request's own)."""
        deadline = time.monotonic() + (request.timeout if timeout is None else timeout)
        self._bump("sent")
        client = self._client
        shared = client.connection
        try:
            if shared is not None:  # single_connection_client=True: one socket, taken in turn
                with self._single_lock:
                    return self._run(shared, request, deadline)
            conn = self._pool.get_connection()
            try:
                return self._run(conn, request, deadline)
            finally:
                self._pool.release(conn)
        except _errors() as e:
            return self._error(e)

    def _run(self, conn: Any, request: Any, deadline: float) -> StoreReply:
        try:
            reply = self._eval(conn, "EVALSHA", request.sha1, request, deadline)
        except _redis().exceptions.NoScriptError:
            # The server has not seen the script (a restart, SCRIPT FLUSH): EVAL loads it.
            self._bump("evals")
            reply = self._eval(conn, "EVAL", request.source, request, deadline)
        return self._values(reply)

    def _eval(self, conn: Any, command: str, script: str, request: Any, deadline: float) -> Any:
        keys = request.keys
        conn.send_command(command, script, len(keys), *keys, *request.args, check_health=False)
        left = deadline - time.monotonic()
        if left <= 0:
            conn.disconnect()  # the reply is owed: it must not answer the next request
            raise _redis().exceptions.TimeoutError("the store timeout passed while sending")
        if self._timed_reads:
            return conn.read_response(timeout=left)
        return conn.read_response()  # older redis-py: socket_timeout (checked) bounds it

    def load_scripts(self) -> List[str]:
        """``SCRIPT LOAD`` every script (optional: the first ``EVALSHA`` falls back to
        ``EVAL`` anyway); returns their SHA1s."""
        return [str(self._client.script_load(s.source)) for s in scripts()]

    def __repr__(self) -> str:
        return f"<tripwire.redis_store.RedisStore sent={self.sent} evals={self.evals}>"


class AsyncRedisStore(_Counters):
    """Runs store requests on a ``redis.asyncio.Redis`` client, cancelling each at its
    timeout. The client's retries must be off."""

    #: ``run`` returns ``"timeout"`` by the deadline itself (the runner adds no timer).
    enforces_timeout = True

    def __init__(self, client: Any) -> None:
        redis = _redis()
        import redis.asyncio  # noqa: F401 - the user's client comes from it

        if _is(client, "redis.asyncio.cluster", "RedisCluster"):
            raise TypeError("store: Redis Cluster clients are not supported yet; pass a redis.asyncio.Redis")
        if not isinstance(client, redis.asyncio.Redis):
            raise TypeError(f"store: must be a redis.asyncio.Redis client, got {type(client).__name__}")
        _refuse_retries(client)
        self._client = client
        self._init_counters()

    @property
    def client(self) -> Any:
        return self._client

    async def run(self, request: Any, timeout: Optional[float] = None) -> StoreReply:
        """Run ``request`` once, within ``timeout`` seconds (default: the request's own)."""
        self._bump("sent")
        try:
            return await within(request.timeout if timeout is None else timeout, self._run(request))
        except asyncio.TimeoutError:
            # Cancelled mid-command: redis-py drops that connection, so no late reply is read.
            self._bump("timeouts")
            return TIMEOUT
        except _errors() as e:
            return self._error(e)

    async def _run(self, request: Any) -> StoreReply:
        keys, args = request.keys, request.args
        execute = self._client.execute_command
        try:
            reply = await execute("EVALSHA", request.sha1, len(keys), *keys, *args)
        except _redis().exceptions.NoScriptError:
            self._bump("evals")
            reply = await execute("EVAL", request.source, len(keys), *keys, *args)
        return self._values(reply)

    async def load_scripts(self) -> List[str]:
        """``SCRIPT LOAD`` every script; returns their SHA1s."""
        return [str(await self._client.script_load(s.source)) for s in scripts()]

    def __repr__(self) -> str:
        return f"<tripwire.redis_store.AsyncRedisStore sent={self.sent} evals={self.evals}>"


Adapter = Any


def store_adapter(store: Any, timeout: Optional[float] = None) -> Tuple[Adapter, bool]:
    """What ``Pipeline(config, store=...)`` accepts, as ``(adapter, is_async)``: a
    ``redis.Redis`` (checked against ``timeout``, the store timeout in seconds), a
    ``redis.asyncio.Redis``, or an adapter object with ``run(request, timeout)`` (sync) or
    ``async run(request, timeout)``."""
    if _is(store, "redis.asyncio.client", "Redis") or _is(store, "redis.asyncio.cluster", "RedisCluster"):
        return AsyncRedisStore(store), True
    if _is(store, "redis.client", "Redis") or _is(store, "redis.cluster", "RedisCluster"):
        return RedisStore(store, timeout=timeout), False
    run: Optional[Callable[..., Any]] = getattr(store, "run", None)
    if store is None or isinstance(store, (str, bytes, int, float, type)) or not callable(run):
        raise TypeError(
            "store: must be a redis.Redis or redis.asyncio.Redis client, or an adapter with "
            f"run(request, timeout); got {type(store).__name__}"
        )
    if isinstance(store, RedisStore) and timeout is not None:
        store.check_timeout(timeout)
    return store, inspect.iscoroutinefunction(run)
