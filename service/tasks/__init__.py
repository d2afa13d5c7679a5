"""Task modules; each is imported by the app (service.app_factory.TASK_MODULES)."""
