"""docs/conventions.md stays in step with the code it documents."""

from __future__ import annotations

import re

from lorentz_live.physics import MicroscopeParams
from tests.conftest import REPO


def test_conventions_list_every_key_and_existing_tests() -> None:
    text = (REPO / "docs" / "conventions.md").read_text()
    for key in MicroscopeParams.parameter_keys():
        assert f"`{key}`" in text, key
    test_sources = "".join(path.read_text() for path in (REPO / "tests").rglob("test_*.py"))
    named = set(re.findall(r"`(test_\w+)`", text))
    assert named, "the conventions name the tests that pin them"
    for name in named:
        assert f"def {name}(" in test_sources, f"docs/conventions.md names a missing test {name}"
