"""Settings (environment), the Celery configuration built from the catalog, and the app
class (the app itself is assembled in service.app_factory)."""
