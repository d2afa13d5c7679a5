"""The Makefile read as data: each target's prerequisites and recipe lines, and the recipe
lines a target runs with everything it depends on (what `make <target>` executes)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Target:
    prerequisites: list[str] = field(default_factory=list)
    recipe: list[str] = field(default_factory=list)


def targets(makefile: str) -> dict[str, Target]:
    found: dict[str, Target] = {}
    current: Target | None = None
    joined = re.sub(r"\\\n", " ", makefile)  # continued lines are one line to make too
    for line in joined.splitlines():
        if line.startswith("\t") and current is not None:
            current.recipe.append(line.strip())
            continue
        m = re.match(r"^([A-Za-z0-9_.$()/-]+(?:\s+[A-Za-z0-9_.$()/-]+)*)\s*:(?!=)\s*(.*)$", line)
        if m and not line.startswith("#"):
            current = Target(prerequisites=m.group(2).split())
            for name in m.group(1).split():
                found[name] = current
        elif line and not line.startswith("\t"):
            current = None
    return found


def variables(makefile: str) -> dict[str, str]:
    """`NAME := value` / `NAME = value` definitions (the last one wins, as in make)."""
    joined = re.sub(r"\\\n", " ", makefile)
    return {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^([A-Z_][A-Z0-9_]*)\s*[:?]?=\s*(.*)$", joined, re.M)
    }


def expand_variables(line: str, values: dict[str, str]) -> str:
    for _ in range(5):  # variables defined through others
        line = re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", lambda m: values.get(m[1], m[0]), line)
    return line


def recipe_closure(makefile: str, target: str) -> list[str]:
    """Every recipe line `make target` runs, prerequisites first (each target once), with the
    Makefile's own variables expanded."""
    table, values = targets(makefile), variables(makefile)
    seen: set[str] = set()
    lines: list[str] = []

    def visit(name: str) -> None:
        if name in seen or name not in table:
            return
        seen.add(name)
        for prerequisite in table[name].prerequisites:
            visit(prerequisite)
        lines.extend(expand_variables(line, values) for line in table[name].recipe)

    visit(target)
    return lines


def depends_on(makefile: str, target: str) -> set[str]:
    """The target and every target it depends on, transitively."""
    table, todo, seen = targets(makefile), [target], set()
    while todo:
        name = todo.pop()
        if name not in seen and name in table:
            seen.add(name)
            todo += table[name].prerequisites
    return seen
