#!/usr/bin/env python3
"""The README's quick starts must be the tested files, verbatim (so they never rot)."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parents[2]
readme = (root / "README.md").read_text()


def block(heading: str, lang: str) -> str:
    i = readme.index(heading)
    j = readme.index("```" + lang + "\n", i) + len("```" + lang + "\n")
    return readme[j : readme.index("\n```\n", j)].strip()


def region(text: str, start: str, end: str) -> str:
    return text[text.index(start) + len(start) : text.index(end)].strip()


rust_doc = (root / "core/src/lib.rs").read_text()
rust = region(rust_doc, "//! ## Quick start\n//!\n//! ```\n", "//! ```\n#![forbid")
rust = "\n".join(
    line[4:] if line.startswith("//! ") else line[3:]
    for line in rust.splitlines()
    if not line.startswith("//! # ")
).strip()

expected = {
    ("### JavaScript", "js"): (root / "bindings-js/examples/quickstart.mjs").read_text().strip(),
    ("### Python", "python"): region(
        (root / "bindings-python/examples/quickstart.py").read_text(),
        "# --8<-- [start:quickstart]\n",
        "# --8<-- [end:quickstart]",
    ),
    ("### C —", "c"): (root / "bindings-c/tests/quickstart.c").read_text().strip(),
    ("### Rust", "rust"): rust,
    ("### JavaScript — `examples/js/fleet.mjs`", "js"): (root / "examples/js/fleet.mjs").read_text().strip(),
    ("### Python — `examples/python/fleet.py`", "python"): region(
        (root / "examples/python/fleet.py").read_text(),
        "# --8<-- [start:fleet]\n",
        "# --8<-- [end:fleet]",
    ),
    ("### C — `examples/c/fleet.c`", "c"): (root / "examples/c/fleet.c").read_text().strip(),
}
bad = [h for (h, lang), want in expected.items() if block(h, lang) != want]
if bad:
    sys.exit(f"README.md quick starts differ from their tested files: {', '.join(bad)}")
print(f"README quick starts: {len(expected)} blocks match their tested files")
