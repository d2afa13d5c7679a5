"""Where task results live: Redis (expiring keys) or PostgreSQL (Celery's database backend),
and what is masked before a result record is written."""
