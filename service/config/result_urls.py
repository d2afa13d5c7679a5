"""The result backend URL: a Redis URL, or Celery's database backend for PostgreSQL.

Celery picks the backend from the URL's scheme (`celery.app.backends.by_url`): `redis://`
and `rediss://` are the Redis backend, `db+<SQLAlchemy URL>` the database backend. The only
PostgreSQL driver installed is psycopg 3, whose SQLAlchemy dialect is `postgresql+psycopg`;
a bare `db+postgresql://` would make SQLAlchemy look for psycopg2, so it is rewritten to the
installed driver. Errors never echo the URL: it may hold a password."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

REDIS_SCHEMES = ("redis", "rediss", "redis+socket")
POSTGRES_SCHEMES = ("db+postgresql", "db+postgresql+psycopg")
POSTGRES_SCHEME = "db+postgresql+psycopg"

BackendKind = Literal["redis", "postgresql"]


def _check_port(raw: str) -> None:
    try:
        urlsplit(raw).port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError:
        raise ValueError("has an invalid port") from None


def check_redis_url(raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"must be a Redis URL ({', '.join(s + '://' for s in REDIS_SCHEMES)}), "
            f"got scheme {scheme or '(none)'!r}"
        )
    _check_port(raw)
    return raw


def backend_kind(raw: str) -> BackendKind:
    return "postgresql" if urlsplit(raw).scheme in POSTGRES_SCHEMES else "redis"


def check_result_backend_url(raw: str) -> str:
    """The URL Celery is given: Redis as is; PostgreSQL with the psycopg driver named."""
    parts = urlsplit(raw)
    if parts.scheme in REDIS_SCHEMES:
        return check_redis_url(raw)
    if parts.scheme not in POSTGRES_SCHEMES:
        accepted = [s + "://" for s in (*REDIS_SCHEMES, *POSTGRES_SCHEMES)]
        hint = ""
        if parts.scheme.startswith("db+") or parts.scheme.startswith("postgres"):
            hint = " (PostgreSQL through psycopg 3 is the one database supported)"
        raise ValueError(
            f"must be a Redis URL or a PostgreSQL database URL ({', '.join(accepted)}), "
            f"got scheme {parts.scheme or '(none)'!r}{hint}"
        )
    _check_port(raw)
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("must name the PostgreSQL host (db+postgresql://user:password@host/db)")
    if not parts.path.strip("/"):
        raise ValueError("must name the database (db+postgresql://user:password@host/DBNAME)")
    return POSTGRES_SCHEME + raw[len(parts.scheme) :]
