"""The skip-locally / fail-in-CI rule for missing dependencies, decided in one place."""

from __future__ import annotations

import harness
import pytest


@pytest.mark.parametrize(
    ("in_ci", "outcome"), [(True, pytest.fail.Exception), (False, pytest.skip.Exception)]
)
def test_a_missing_dependency_fails_in_ci_and_skips_locally(
    monkeypatch: pytest.MonkeyPatch, in_ci: bool, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(harness, "IN_CI", in_ci)
    with pytest.raises(outcome, match="no-such-binary-for-fleet"):
        harness.require_binary("no-such-binary-for-fleet")
    with pytest.raises(outcome, match="redis is gone"):
        harness.need_redis(False, "redis is gone")
    harness.need_redis(True, "redis is here")  # available: neither
