"""Secrets are masked wherever text or structures leave the process."""

from __future__ import annotations

from typing import Any

import pytest

from service.redaction import (
    MASK,
    mask_credentials,
    mask_sensitive_repr,
    mask_text,
    redact,
    redact_call,
)

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


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"user": "ann", "password": "hunter2"}', "hunter2"),
        ('{"token": 123456789}', "123456789"),
        ("login failed: password=hunter2 for ann", "hunter2"),
        ("f(user='ann', api_key='k-9')", "k-9"),
        ("Authorization: Bearer abc.def", "abc.def"),
        ("{'secret': 'it\\'s here'}", "here"),
    ],
)
def test_free_text_values_after_sensitive_keys_are_masked(text: str, secret: str) -> None:
    masked = mask_text(text, KEYS)
    assert secret not in masked and MASK in masked


def test_text_without_a_key_value_pair_is_unchanged() -> None:
    for text in ("password == 3", "passwordpassword", "a password reset", "x" * 1000):
        assert mask_text(text, KEYS) == text


def test_masked_text_is_bounded() -> None:
    assert len(mask_text("a" * 100_000, KEYS, limit=1000)) < 1100


def test_positional_arguments_are_masked_by_parameter_name() -> None:
    def until_fixed(run_key: str, password: str | None = None, extra: Any = None) -> None: ...

    args, kwargs = redact_call(until_fixed, ["run", "hunter2", {"token": "t"}], {"x": 1}, KEYS)
    assert args == ["run", MASK, {"token": MASK}]
    assert kwargs == {"x": 1}
