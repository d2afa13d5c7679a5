"""Names of the result store's objects (the broker's live in infra.names). Pure."""

from __future__ import annotations

RESULTS_SECRET = "celery-fleet-results"
RESULTS_URL_KEY = "url"
POSTGRES = "celery-fleet-postgres"
POSTGRES_PASSWORD_KEY = "password"
# The in-cluster server's bootstrap superuser (initdb's), distinct from the fleet's role.
POSTGRES_SUPERUSER = "postgres"
POSTGRES_SUPERUSER_PASSWORD_KEY = "superuser-password"
POSTGRES_INIT = "celery-fleet-postgres-init"
POSTGRES_PORT = 5432


def postgres_host(namespace: str) -> str:
    return f"{POSTGRES}.{namespace}.svc.cluster.local"


def postgres_url(user: str, password: str, host: str, database: str, query: str = "") -> str:
    """The URL Celery's database backend takes (`db+` + a SQLAlchemy URL; psycopg 3)."""
    url = f"db+postgresql+psycopg://{user}:{password}@{host}:{POSTGRES_PORT}/{database}"
    return f"{url}?{query}" if query else url
