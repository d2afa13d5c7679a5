"""Names of the result store's objects (the broker's live in infra.names). Pure."""

from __future__ import annotations

RESULTS_SECRET = "celery-fleet-results"
RESULTS_URL_KEY = "url"
POSTGRES = "celery-fleet-postgres"
POSTGRES_PASSWORD_KEY = "password"
POSTGRES_PORT = 5432


def postgres_host(namespace: str) -> str:
    return f"{POSTGRES}.{namespace}.svc.cluster.local"


def postgres_url(user: str, password: str, host: str, database: str, query: str = "") -> str:
    """The URL Celery's database backend takes (`db+` + a SQLAlchemy URL; psycopg 3)."""
    url = f"db+postgresql+psycopg://{user}:{password}@{host}:{POSTGRES_PORT}/{database}"
    return f"{url}?{query}" if query else url
