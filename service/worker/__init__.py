"""The worker runtime: Celery signal hooks, prefork-safe metrics and their server,
heartbeat, JSON logs."""
