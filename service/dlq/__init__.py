"""Lossless dead-letter queue: capture inside the worker, atomic operations in Redis."""
