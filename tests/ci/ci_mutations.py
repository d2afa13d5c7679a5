"""How the breakages break a copy of the real CI files: find a job or step, edit a text, set
or delete a key. ci_breakages.py and ci_breakages_safety.py list the breakages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ci_model import CI, steps

Mutation = Callable[[CI], object]
SHA_CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"
DELETE = object()
ACCESS = ".github/actions/stack-access/action.yml"
CI_YML = ".github/workflows/ci.yml"
DEPLOY_YML = ".github/workflows/deploy.yml"
DRIFT_YML = ".github/workflows/drift.yml"


def job(ci: CI, wf: str, name: str) -> dict[str, Any]:
    return ci.workflows[wf]["jobs"][name]  # type: ignore[no-any-return]


def step(ci: CI, wf: str, name: str, text: str) -> dict[str, Any]:
    """The first step of a job whose name, uses or run contains `text`."""
    return next(
        s
        for s in steps(job(ci, wf, name))
        if any(text in str(s.get(k, "")) for k in ("name", "uses", "run"))
    )


def access_step(ci: CI, text: str) -> dict[str, Any]:
    return next(
        s
        for s in ci.actions["stack-access"]["runs"]["steps"]
        if any(text in str(s.get(k, "")) for k in ("name", "uses", "run"))
    )


def on(ci: CI, wf: str) -> dict[str, Any]:
    return ci.workflows[wf][True]  # type: ignore[no-any-return]  # YAML reads `on` as True


def edit_text(path: str, old: str, new: str, count: int = -1) -> Mutation:
    def mutate(ci: CI) -> None:
        texts = ci.texts if path in ci.texts else ci.files
        assert old in texts[path], (path, old)
        texts[path] = texts[path].replace(old, new, count)

    return mutate


def edit_run(wf: str, name: str, text: str, old: str, new: str) -> Mutation:
    def mutate(ci: CI) -> None:
        s = step(ci, wf, name, text)
        assert old in s["run"], (wf, name, old)
        s["run"] = s["run"].replace(old, new)

    return mutate


def set_in(getter: Callable[[CI], dict[Any, Any]], key: Any, value: Any) -> Mutation:
    def mutate(ci: CI) -> None:
        target = getter(ci)
        if value is DELETE:
            del target[key]
        else:
            target[key] = value

    return mutate


def up(wf: str = "deploy", name: str = "prod") -> Callable[[CI], dict[str, Any]]:
    return lambda c: step(c, wf, name, "pulumi-run up")


NO_SUDO = edit_text("Makefile", 'as_root=(sudo -n env "PATH=$$PATH"', "as_root=(env")
