"""load_policies: a policy file as a mapping of name to Pipeline."""

from __future__ import annotations

import json
import pathlib

import pytest

from tripwire import CircuitOpenError, Pipeline, load_policies
from tripwire.testing import FakeClock

FILE = {
    "seed": 7,
    "policies": {
        "payments": {"circuitBreaker": {"trip": {"consecutiveFailures": 1}}, "retry": {"maxRetries": 1, "backoff": {"base": "1s"}}},
        "search": {"rateLimit": {"rate": "2/s", "burst": 2}},
    },
}


def test_from_dict_path_and_text(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(FILE))
    for source in (FILE, path, str(path), json.dumps(FILE)):
        policies = load_policies(source)
        assert policies.names() == ["payments", "search"]
        assert set(policies) == {"payments", "search"} and len(policies) == 2
        assert isinstance(policies["payments"], Pipeline)
        assert policies.get("missing") is None


def test_each_policy_is_a_working_pipeline_named_after_its_entry() -> None:
    clock = FakeClock()
    policies = load_policies(FILE, clock=clock, fallbacks={"search": "cached"})
    search = policies["search"]
    assert [search.call(lambda: i) for i in range(2)] == [0, 1]
    assert search.call(lambda: "third") == "cached"  # rate limited -> fallback
    payments = policies["payments"]
    with pytest.raises(Exception):
        payments.call(lambda: (_ for _ in ()).throw(ConnectionError("x")))
    with pytest.raises(CircuitOpenError):
        payments.call(lambda: 1)
    assert 'pipeline="payments"' in payments.prometheus()
    assert payments.name == "payments"
    policies.close()
    assert payments.closed
