"""The queue-length exporter: Redis queue statistics served as Prometheus metrics."""
