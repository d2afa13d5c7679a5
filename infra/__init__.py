"""Pulumi program deploying celery-fleet; `__main__.py` wires the components."""
