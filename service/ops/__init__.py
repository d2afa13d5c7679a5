"""One-shot operations the infra runs as Kubernetes Jobs; standard library only."""
