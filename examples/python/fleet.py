"""tripwire in Python: one rate limit shared by every instance of a service, through Redis.

Two pipelines stand for two instances (two processes, usually on two machines). Both are
configured with the same ``store.key``, so they share one limit of 10/s with a burst of 10:
together they admit the burst once, not once each. Each decision is one round trip
(EVALSHA of tripwire's GCRA script); were Redis down, each instance would fall back to its
own share of the limit (``expectedInstances``: 2).

Prints ``admitted 5 + 5 = 10 of 20 calls``. Redis: $TRIPWIRE_REDIS_URL (scripts/ci/
test-python.sh starts a private redis-server), default redis://127.0.0.1:6379/. Needs
``pip install redis``.

Run: ``python examples/python/fleet.py``
"""

from __future__ import annotations

import sys

# --8<-- [start:fleet]
import os

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import tripwire

config = {
    "rateLimit": {"algorithm": "gcra", "rate": "10/s", "burst": 10},
    "store": {"key": "partner-api", "timeout": "25ms", "expectedInstances": 2},
}
# Your own client. No retries: a resend could count one call twice. Sync sockets cannot be
# interrupted, so their timeouts must not exceed the store timeout.
client = redis.Redis.from_url(
    os.environ.get("TRIPWIRE_REDIS_URL", "redis://127.0.0.1:6379/"),
    socket_timeout=0.025,
    socket_connect_timeout=0.025,
    retry=Retry(NoBackoff(), 0),
)
instances = [tripwire.Pipeline(config, store=client, name=f"instance-{i}") for i in (1, 2)]

admitted = [0, 0]
for _ in range(10):
    for i, api in enumerate(instances):
        try:
            api.call(lambda: "called the partner API")
            admitted[i] += 1
        except tripwire.RateLimitedError:
            pass  # e.retry_after says when the limit has room again
print(f"admitted {admitted[0]} + {admitted[1]} = {sum(admitted)} of 20 calls")
client.close()
# --8<-- [end:fleet]

# The example checks its own story: the two instances shared one burst, they did not get
# one each. (Run it twice within a second: the second run finds the burst already spent, as
# another instance would; the state lives in Redis.)
if sum(admitted) > 10:
    sys.exit(f"fleet: the two instances admitted {admitted}, more than the one burst of 10")
