"""Every conformance vector in tests/vectors/ replays through the native API and matches."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

import vectors

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors"
FILES = sorted(VECTORS.glob("*.json"))


def test_the_vectors_are_there() -> None:
    # A missing directory must fail loudly, not parametrize to nothing.
    assert len(FILES) >= 100, f"expected the conformance vectors in {VECTORS}"
    kinds = {json.loads(f.read_text())["kind"] for f in FILES}
    assert kinds <= set(vectors.RUNNERS), kinds - set(vectors.RUNNERS)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_vector(path: pathlib.Path) -> None:
    v = json.loads(path.read_text())
    if v["kind"] in vectors.STORE_KINDS and not os.environ.get("TRIPWIRE_REDIS_URL"):
        # `sharedRateLimit` and `fleet` vectors replay through the real store scripts: with
        # no Redis they skip, saying why (scripts/ci/test-python.sh starts one and requires it).
        reason = (
            f"a {v['kind']} vector needs a store: no Redis (TRIPWIRE_REDIS_URL is unset; "
            "scripts/ci/test-python.sh starts a private redis-server)"
        )
        if os.environ.get("TRIPWIRE_REQUIRE_REDIS"):
            pytest.fail(reason)
        pytest.skip(reason)
    vectors.run(v)


def test_the_runner_catches_a_wrong_expectation() -> None:
    # The runner must be able to fail: flip one expectation and it must raise.
    v = json.loads((VECTORS / "breaker-consecutive-trips.json").read_text())
    for step in v["steps"]:
        if step["op"] == "state" and step.get("expect") == "open":
            step["expect"] = "closed"
            break
    else:
        pytest.fail("the vector changed: no state step expecting open")
    with pytest.raises(vectors.VectorFailure):
        vectors.run(v)
