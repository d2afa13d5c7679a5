"""Settings fail at start with a message naming the variable, never echoing secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.config.settings import load_settings
from service.errors import SettingsError


def test_defaults_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    settings = load_settings()
    assert settings.broker_url.get_secret_value() == "redis://localhost:6379/0"
    assert settings.visibility_timeout > 1800


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CELERY_BROKER_URL", "amqp://user:hunter2@host//", "CELERY_BROKER_URL: must be a Redis"),
        ("CELERY_BROKER_URL", "redis://u:hunter2@host:notaport/0", "CELERY_BROKER_URL: has an"),
        ("FLEET_METRICS_PORT", "seventy", "FLEET_METRICS_PORT"),
        ("FLEET_LOG_LEVEL", "LOUD", "FLEET_LOG_LEVEL"),
        ("FLEET_PRIORITY_STEPS", "[3, 6]", "FLEET_PRIORITY_STEPS"),
        ("FLEET_FLOWER_BASIC_AUTH", "hunter2", "FLEET_FLOWER_BASIC_AUTH: must look like"),
        # Unusable, not just malformed: non-JSON lists, empty lists, non-finite numbers
        ("FLEET_SENSITIVE_KEYS", "password,token", "FLEET_SENSITIVE_KEYS: must be JSON"),
        ("FLEET_PRIORITY_STEPS", "0,3,6", "FLEET_PRIORITY_STEPS: must be JSON"),
        ("FLEET_SENSITIVE_KEYS", "[]", "FLEET_SENSITIVE_KEYS: must be a non-empty"),
        ("FLEET_SENSITIVE_KEYS", '["password", " "]', "FLEET_SENSITIVE_KEYS: must be a non-empty"),
        (
            "FLEET_UNACKED_RESTORE_INTERVAL",
            "inf",
            "FLEET_UNACKED_RESTORE_INTERVAL: Input should be",
        ),
        (
            "FLEET_UNACKED_RESTORE_INTERVAL",
            "nan",
            "FLEET_UNACKED_RESTORE_INTERVAL: Input should be",
        ),
        ("FLEET_HEARTBEAT_MAX_AGE", "Infinity", "FLEET_HEARTBEAT_MAX_AGE"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_visibility_timeout_below_the_hard_limits_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Owned messages make the visibility timeout a safety net: no bound from hard limits
    monkeypatch.setenv("FLEET_VISIBILITY_TIMEOUT", "600")
    settings = load_settings()
    assert settings.visibility_timeout == 600
    assert settings.dead_owner_timeout_seconds <= 30


def test_worker_refuses_to_start_on_an_invalid_dead_owner_timeout() -> None:
    # Given a dead-owner timeout a Redis round trip could exceed
    env = {"FLEET_DEAD_OWNER_TIMEOUT_SECONDS": "1", "PATH": "/usr/bin:/bin"}
    # When the worker command starts
    done = subprocess.run(
        [sys.executable, "-m", "service", "worker", "-Q", "default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it exits non-zero with the reason, before any Celery process starts
    assert done.returncode == 2
    assert "FLEET_DEAD_OWNER_TIMEOUT_SECONDS" in done.stderr


def test_celery_direct_start_also_refuses(tmp_path: object) -> None:
    env = {"FLEET_DEAD_OWNER_TIMEOUT_SECONDS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "service", "worker", "-Q", "default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "FLEET_DEAD_OWNER_TIMEOUT_SECONDS" in done.stdout + done.stderr


def test_sensitive_keys_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_SENSITIVE_KEYS", '["Password", "API_KEY"]')
    assert load_settings().sensitive_keys == ("password", "api_key")


@pytest.mark.parametrize(
    "limit", [["--time-limit", "-5"], ["--soft-time-limit=0"], ["--time-limit", "inf"]]
)
def test_worker_refuses_a_time_limit_that_is_not_a_positive_number(limit: list[str]) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "service", "worker", "-Q", "default", *limit],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert limit[0].split("=")[0] in done.stderr
    assert "Traceback" not in done.stderr
