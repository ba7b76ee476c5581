"""The quick start the README is cut from runs and prints what it says."""

from __future__ import annotations

import pathlib
import random
import runpy

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    random.seed(3)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out[0] in ("{'item': 'book', 'price': 42}", "{'price': None, 'stale': True}")
    assert out[1] == "{'item': 'pen', 'price': 42}"
    assert out[2] == "circuitOpen None"
    assert out[3] == "allowed"
    assert out[4] == "degraded"
    assert out[5].endswith("calls succeeded")


def test_readme_quick_start_is_the_tested_file() -> None:
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    text = EXAMPLE.read_text()
    start = text.index("# --8<-- [start:quickstart]\n") + len("# --8<-- [start:quickstart]\n")
    snippet = text[start : text.index("# --8<-- [end:quickstart]")]
    assert snippet.strip() in readme, "README.md's quick start drifted from examples/quickstart.py"
