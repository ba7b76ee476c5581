import os
import pathlib
import sys
from typing import Iterator

import pytest

# The vector runner module lives beside the tests.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import vectors  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _close_vector_store() -> Iterator[None]:
    yield
    vectors.close_default_store()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The private redis-server of this run (scripts/ci/test-python.sh starts it and sets
    TRIPWIRE_REQUIRE_REDIS, so that a missing server fails instead of skipping)."""
    url = os.environ.get("TRIPWIRE_REDIS_URL")
    if not url:
        if os.environ.get("TRIPWIRE_REQUIRE_REDIS"):
            pytest.fail("TRIPWIRE_REDIS_URL is unset but Redis is required here")
        pytest.skip("no Redis: run scripts/ci/test-python.sh (it starts a private redis-server)")
    return url


@pytest.fixture(scope="session")
def redis_pid() -> int:
    pid = os.environ.get("TRIPWIRE_REDIS_PID")
    if not pid:
        if os.environ.get("TRIPWIRE_REQUIRE_REDIS"):
            pytest.fail("TRIPWIRE_REDIS_PID is unset but Redis is required here")
        pytest.skip("no Redis server pid: run scripts/ci/test-python.sh")
    return int(pid)
