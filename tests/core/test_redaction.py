"""Secrets are masked wherever text or structures leave the process."""

from __future__ import annotations

import pytest

from service.redaction import MASK, mask_credentials, mask_sensitive_repr, redact

KEYS = ("password", "token", "secret", "authorization", "api_key")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Error 111 connecting to redis://:s3cret@host:6379/0.",
            "Error 111 connecting to redis://***@host:6379/0.",
        ),
        (
            "rediss://user:p%40ss@h:6380/1?ssl_cert_reqs=required",
            "rediss://***@h:6380/1?ssl_cert_reqs=required",
        ),
        ("no url here", "no url here"),
    ],
)
def test_url_credentials_are_masked(text: str, expected: str) -> None:
    assert mask_credentials(text) == expected


def test_sensitive_pairs_in_reprs_are_masked() -> None:
    text = "{'user': 'ann', 'db_password': 'hunter2', \"API_KEY\": \"k-1\"}"
    masked = mask_sensitive_repr(text, KEYS)
    assert "hunter2" not in masked and "k-1" not in masked
    assert "'user': 'ann'" in masked


def test_nested_structures_are_redacted_by_key() -> None:
    value = {"user": "ann", "auth": {"Authorization": "Bearer x", "items": [{"token": "t"}]}}
    assert redact(value, KEYS) == {
        "user": "ann",
        "auth": {"Authorization": MASK, "items": [{"token": MASK}]},
    }
