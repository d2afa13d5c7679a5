"""Task modules; each is imported by the app (service.celery_app.TASK_MODULES)."""
