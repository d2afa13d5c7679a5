"""Settings (environment), the Celery configuration built from the catalog, and the app."""
