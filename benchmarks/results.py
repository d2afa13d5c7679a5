"""The figures `make bench` reports: each {value, target, met}, written to
benchmarks/results/latest.json and printed as a table at the end of the run."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

LATEST = Path(__file__).with_name("results") / "latest.json"

FIGURES: dict[str, dict[str, Any]] = {}


def record(
    key: str, label: str, value: float, target: str, met: bool, **detail: Any
) -> dict[str, Any]:
    """Keep one figure; `target` is the rule as text (">= 0.97"), `met` its verdict."""
    figure = {"label": label, "value": round(value, 4), "target": target, "met": bool(met)}
    if detail:
        figure["detail"] = detail
    FIGURES[key] = figure
    return figure


def check(key: str) -> None:
    """Fail the calling benchmark when its figure misses the target, naming it."""
    figure = FIGURES[key]
    assert figure["met"], f"{key} ({figure['label']}): {figure['value']} misses {figure['target']}"


def write() -> Path | None:
    if not FIGURES:
        return None
    LATEST.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "figures": dict(sorted(FIGURES.items())),
    }
    LATEST.write_text(json.dumps(document, indent=2) + "\n")
    return LATEST


def table() -> str:
    rows = ["| figure | value | target | met |", "|---|---|---|---|"]
    for key, figure in sorted(FIGURES.items()):
        met = "yes" if figure["met"] else "**NO**"
        rows.append(f"| {key} {figure['label']} | {figure['value']} | {figure['target']} | {met} |")
    return "\n".join(rows)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
