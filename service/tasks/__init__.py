"""Task modules; each is imported by the app (service.config.celery_app.TASK_MODULES)."""
