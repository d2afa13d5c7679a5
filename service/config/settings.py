"""Runtime settings, read once from the environment with pydantic-settings.

Invalid values stop the process at start with a message naming the variable; secret values
(broker URL passwords, SMTP password, Flower credentials) are SecretStr so they never show in
reprs, logs or exceptions."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from service.catalog.naming import (
    FLOWER_PORT,
    KOMBU_DEFAULT_PRIORITY_STEPS,
    KOMBU_DEFAULT_SEP,
    WORKER_METRICS_PORT,
)
from service.config.redis_url import check_redis_url
from service.config.result_urls import (
    BackendKind,
    backend_kind,
    check_result_backend_url,
)
from service.errors import SettingsError
from service.liveness import DEFAULT_HEARTBEAT_FILE, DEFAULT_MAX_AGE_SECONDS

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "text"]
ResultCompression = Literal["gzip", "zlib", "bzip2", "lzma"]


def _check_redis_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        check_redis_url(value.get_secret_value())  # messages never echo the URL
    return value


class FleetSettings(BaseSettings):
    """Every knob the service reads. Env names are the field names upper-cased, except the
    two Celery-standard ones which keep their usual names."""

    # allow_inf_nan=False: "inf" or "nan" for an interval or a timeout is a typo, not a wish.
    model_config = SettingsConfigDict(
        env_prefix="FLEET_", extra="ignore", frozen=True, allow_inf_nan=False
    )

    broker_url: SecretStr = Field(
        default=SecretStr("redis://localhost:6379/0"), validation_alias="CELERY_BROKER_URL"
    )
    result_backend: SecretStr | None = Field(default=None, validation_alias="CELERY_RESULT_BACKEND")
    # Where DLQ entries live; the broker's Redis when unset.
    dlq_url: SecretStr | None = None

    # A consumer (worker process) whose heartbeat in Redis is older than this is dead: the
    # messages it held go back to their queue (service.transport). Its heartbeat thread beats
    # 4 times per timeout, so a Redis blip shorter than three beats never declares it dead.
    dead_owner_timeout_seconds: float = Field(default=30.0, ge=2, le=600)
    # The safety net only: kombu's global unacked records (a stock kombu client, the previous
    # release during a rolling upgrade) come back after this long. Messages this transport
    # hands out are owned, so a live worker's long task or far ETA is never re-delivered.
    visibility_timeout: int = Field(default=3600, ge=1)
    unacked_restore_interval: float = Field(default=10.0, gt=0)
    unacked_mutex_expire: int = Field(default=60, ge=5)
    # An idle worker blocks on its queues' wake lists and polls anyway this often, for
    # messages pushed by something that does not push a wake token (a stock kombu client).
    idle_poll_seconds: float = Field(default=30.0, ge=0.1, le=600)
    # Each publish waits until this many replicas have it (WAIT after the push, on the same
    # connection): closes the window in which a failed primary loses acknowledged publishes
    # (replication is asynchronous), at the cost of a replica round trip per publish. 0: off.
    publish_wait_replicas: int = Field(default=0, ge=0, le=5)
    publish_wait_timeout_ms: int = Field(default=1000, ge=1, le=60_000)
    priority_steps: tuple[int, ...] = KOMBU_DEFAULT_PRIORITY_STEPS
    priority_sep: str = KOMBU_DEFAULT_SEP

    result_expires: int = Field(default=86_400, ge=60)
    # Stored results compressed with this codec (kombu's names); Redis only: Celery's
    # database backend cannot hold compressed payloads and ignores the setting.
    result_compression: ResultCompression | None = None
    # PostgreSQL results: SQLAlchemy pool per worker process (a prefork child runs one task
    # at a time), and how long a connection attempt may take before the store is retried.
    result_db_pool_size: int = Field(default=2, ge=1, le=50)
    result_db_connect_timeout: int = Field(default=10, ge=1, le=300)
    # How long a worker keeps retrying a store while PostgreSQL is unreachable (a restart,
    # a Multi-AZ failover takes 1-2 minutes) before the result is given up.
    result_db_retry_seconds: int = Field(default=180, ge=0, le=3600)
    # Task events (what Flower's task views are built from): 3 PUBLISH per task plus a
    # worker heartbeat every 2 s; off unless something reads them.
    task_events: bool = False
    max_tasks_per_child: int = Field(default=1000, ge=1)
    max_memory_per_child_kb: int = Field(default=512_000, ge=10_000)

    # Worker observability.
    metrics_port: int = Field(default=WORKER_METRICS_PORT, ge=0, le=65535)
    metrics_dir: Path = Path("/tmp/fleet-metrics")
    heartbeat_file: Path = Path(DEFAULT_HEARTBEAT_FILE)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    heartbeat_max_age: float = Field(default=DEFAULT_MAX_AGE_SECONDS, gt=0)
    # Beat (celery-redbeat): the schedule lives in Redis; one beat holds the lock and sends,
    # any other waits. A beat that dies without releasing it (node loss, SIGKILL) is replaced
    # by a waiting one once the lock expires; the active one extends it every loop.
    beat_lock_timeout: int = Field(default=30, ge=5, le=3600)
    beat_max_loop_seconds: float = Field(default=5.0, ge=1, le=300)
    snapshot_interval: float = Field(default=60.0, ge=1)
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"
    # Celery's two INFO lines per task ("received", "succeeded"; also "retry"): off by
    # default, the task metrics count them; each JSON line costs the worker ~0.1 ms.
    log_every_task: bool = False

    # Poison-message bounds and DLQ policy.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    dlq_raw_body_bytes: int = Field(default=65_536, ge=256)
    dlq_traceback_chars: int = Field(default=8_000, ge=200)
    sensitive_keys: tuple[str, ...] = ("password", "token", "secret", "authorization", "api_key")
    # A message whose `expires` passed before it ran: dead-lettered with reason `expired`
    # (true), or dropped as Celery does (false). Counted either way (celery_task_expired).
    dlq_expired: bool = True

    # Example task dependencies.
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "celery-fleet@localhost"
    smtp_password: SecretStr | None = None
    reports_dir: Path = Path("/tmp/fleet-reports")
    # The cluster-wide budget for calls to the external API, shared by every worker.
    external_api_limit: int = Field(default=10, ge=1)
    external_api_window_seconds: float = Field(default=1.0, gt=0)

    # Flower.
    flower_port: int = Field(default=FLOWER_PORT, ge=1, le=65535)
    flower_basic_auth: SecretStr | None = None  # "user:password"

    @field_validator("broker_url", "dlq_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_redis_url(value)

    @field_validator("result_backend")
    @classmethod
    def _result_backend_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        return SecretStr(check_result_backend_url(value.get_secret_value()))

    @model_validator(mode="after")
    def _compression_fits_the_backend(self) -> FleetSettings:
        if self.result_compression is not None and self.result_backend_kind == "postgresql":
            raise ValueError(
                "FLEET_RESULT_COMPRESSION: Celery's database backend stores results "
                "uncompressed and would ignore it; unset it for a PostgreSQL result backend"
            )
        return self

    @field_validator("priority_steps")
    @classmethod
    def _steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or 0 not in value or any(not 0 <= s <= 9 for s in value):
            raise ValueError("must be distinct integers in 0..9 including 0")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a step")
        return tuple(sorted(value))

    @field_validator("sensitive_keys")
    @classmethod
    def _sensitive_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # An empty list would silently turn every mask off.
        words = tuple(word.strip().lower() for word in value)
        if not words or any(not word for word in words):
            raise ValueError(
                'must be a non-empty JSON list of non-empty words, e.g. ["password", "token"]'
            )
        return words

    @field_validator("flower_basic_auth")
    @classmethod
    def _basic_auth(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("must look like user:password")
        return value

    @model_validator(mode="after")
    def _lock_outlives_a_loop(self) -> FleetSettings:
        # The active beat extends its lock once per loop: a lock that could expire between
        # two loops would let a second beat take over while the first still sends.
        if self.beat_lock_timeout < 2 * self.beat_max_loop_seconds:
            raise ValueError(
                f"FLEET_BEAT_LOCK_TIMEOUT ({self.beat_lock_timeout}s) must be at least twice "
                f"FLEET_BEAT_MAX_LOOP_SECONDS ({self.beat_max_loop_seconds:g}s)"
            )
        return self

    @property
    def result_backend_url(self) -> str:
        backend = self.result_backend or self.broker_url
        return backend.get_secret_value()

    @property
    def result_backend_kind(self) -> BackendKind:
        return backend_kind(self.result_backend_url)

    @property
    def dlq_redis_url(self) -> str:
        return (self.dlq_url or self.broker_url).get_secret_value()


def _env_name(loc: tuple[int | str, ...]) -> str:
    field_name = str(loc[0]) if loc else "?"
    # pydantic reports an aliased field (CELERY_BROKER_URL...) by its alias, others by name.
    for name, field in FleetSettings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str) and field_name in (name, alias):
            return alias
    return f"FLEET_{field_name.upper()}" if field_name != "?" else "settings"


# pydantic-settings' own error for a value it cannot even parse (non-JSON for a list field).
_JSON_EXAMPLES = {"sensitive_keys": '["password", "token"]', "priority_steps": "[0, 3, 6, 9]"}
_UNPARSABLE_FIELD = re.compile(r'error parsing value for field "(?P<field>\w+)"')


def load_settings() -> FleetSettings:
    """Read settings now; raise SettingsError naming each bad variable (values never echoed)."""
    try:
        return FleetSettings()
    except PydanticSettingsError as exc:
        match = _UNPARSABLE_FIELD.search(str(exc))
        field = match["field"] if match else "?"
        example = _JSON_EXAMPLES.get(field, "[...]")
        raise SettingsError(
            f"invalid configuration:\n  {_env_name((field,))}: must be JSON, e.g. {example}"
        ) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            name = _env_name(error["loc"]) if error["loc"] else "settings"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> FleetSettings:
    return load_settings()
