"""celery-fleet policy pack; the checks are pure functions in `checks`."""
