"""The queue catalog and what derives from it directly: routing, derived names, ports."""
