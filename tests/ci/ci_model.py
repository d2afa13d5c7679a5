"""The repo's GitHub Actions definitions read into plain data, with the small lookups the
rules share (steps of a job, pulumi/actions steps, the stacks a step runs on)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
STACK_ACCESS = "$/.github/actions/stack-access"
PULUMI_ACTION = "pulumi/actions"

FILES = (
    "Makefile",
    "Dockerfile",
    ".dockerignore",
    ".github/CODEOWNERS",
    "requirements*.lock",
    ".github/scripts/*",
    ".ci/run",
)
PULUMI_RUN = ".github/scripts/pulumi-run"
SECRET_REF = re.compile(r"\$\{\{[^}]*\bsecrets\.")

Job = dict[str, Any]
Step = dict[str, Any]


@dataclass
class CI:
    workflows: dict[str, dict[Any, Any]]  # "preview" -> parsed preview.yml (`on` reads as True)
    actions: dict[str, dict[str, Any]]  # "stack-access" -> parsed action.yml
    texts: dict[str, str]  # path relative to the repo -> raw text (comments kept)
    stacks: set[str]  # from Pulumi.<stack>.yaml
    pulumi_version_file: str  # contents of .pulumi-version
    locked: dict[str, str] = field(default_factory=dict)  # requirements.lock name -> version
    # Other files the pipeline's properties live in, path relative to the repo -> text (absent
    # when the file does not exist): Makefile, Dockerfile, .dockerignore, CODEOWNERS, the
    # lock files, .github/scripts/*, .ci/run.
    files: dict[str, str] = field(default_factory=dict)

    def copy(self) -> CI:
        return copy.deepcopy(self)


def load(root: Path = ROOT) -> CI:
    workflows: dict[str, dict[Any, Any]] = {}
    actions: dict[str, dict[str, Any]] = {}
    texts: dict[str, str] = {}
    for path in sorted((root / ".github" / "workflows").glob("*.yml")):
        texts[str(path.relative_to(root))] = path.read_text()
        workflows[path.stem] = yaml.safe_load(path.read_text())
    for path in sorted((root / ".github" / "actions").glob("*/action.yml")):
        texts[str(path.relative_to(root))] = path.read_text()
        actions[path.parent.name] = yaml.safe_load(path.read_text())
    lock = (root / "requirements.lock").read_text()
    locked = {m[1]: m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.M)}
    version_file = root / ".pulumi-version"
    files = {
        str(path.relative_to(root)): path.read_text()
        for pattern in FILES
        for path in sorted(root.glob(pattern))
        if path.is_file()
    }
    return CI(
        workflows=workflows,
        actions=actions,
        texts=texts,
        stacks={p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml")},
        pulumi_version_file=version_file.read_text() if version_file.exists() else "",
        locked=locked,
        files=files,
    )


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """The `on:` mapping (PyYAML reads the bare key `on` as the boolean True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def jobs(workflow: dict[Any, Any]) -> dict[str, Job]:
    return dict(workflow.get("jobs") or {})


def steps(job: Job) -> list[Step]:
    return list(job.get("steps") or [])


def action_of(step: Step) -> str:
    """`owner/repo` of a step's `uses:` (without the ref), or "" for a `run:` step."""
    uses = str(step.get("uses", ""))
    return uses.split("@", 1)[0]


def inputs(step: Step) -> dict[str, Any]:
    return dict(step.get("with") or {})


def pulumi_steps(job: Job) -> list[Step]:
    return [s for s in steps(job) if action_of(s) == PULUMI_ACTION]


def all_jobs(ci: CI) -> Iterator[tuple[str, str, Job]]:
    for wf_name, wf in ci.workflows.items():
        for job_name, job in jobs(wf).items():
            yield wf_name, job_name, job


def all_steps(ci: CI) -> Iterator[tuple[str, Step]]:
    """Every step of every workflow job and composite action, with where it is."""
    for wf_name, job_name, job in all_jobs(ci):
        for step in steps(job):
            yield f"{wf_name}.{job_name}", step
    for name, action in ci.actions.items():
        for step in (action.get("runs") or {}).get("steps") or []:
            yield f"action {name}", step


def matrix_values(job: Job, key: str) -> list[str]:
    """Values of a matrix key, from a plain list or from `include:` entries."""
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    values = [str(v) for v in matrix.get(key) or []]
    values += [str(entry[key]) for entry in matrix.get("include") or [] if key in entry]
    return values


def expand(job: Job, value: str) -> set[str]:
    """A string with each `${{ matrix.<key> }}` in it replaced by every value of the matrix
    (one key per string, as the workflows use them)."""
    ref = re.search(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}", value)
    if ref:
        return {value.replace(ref.group(0), v) for v in matrix_values(job, ref.group(1))}
    return {value} if value else set()


FLAG_INPUTS = {"refresh": "--refresh", "expect-no-changes": "--expect-no-changes", "diff": "--diff"}


def _action_command(step: Step) -> str:
    """A pulumi/actions step that runs a command, as the command line it amounts to."""
    w = inputs(step)
    flags = [flag for key, flag in FLAG_INPUTS.items() if is_true(w.get(key))]
    if w.get("policyPacks"):
        flags.append(f"--policy-pack {w['policyPacks']}")
    return " ".join([str(w["command"]), *flags])


def pulumi_runs(job: Job) -> list[tuple[Step, str]]:
    """(step, the pulumi command line) for each `pulumi-run <command>` a job's steps run (and
    each pulumi/actions step running a command, as the command line it amounts to)."""
    found = []
    for s in steps(job):
        if action_of(s) == PULUMI_ACTION and inputs(s).get("command"):
            found.append((s, _action_command(s)))
            continue
        script = re.sub(r"\\\n\s*", " ", str(s.get("run", "")))  # join continued lines
        for line in script.splitlines():
            m = re.search(rf"{re.escape(PULUMI_RUN)}\s+(.*)", line)
            if m:
                found.append((s, m.group(1)))
    return found


def pulumi_command(line: str) -> str:
    """`up`, `preview`, `refresh`, `stack output` ... of a pulumi-run command line."""
    words = line.split()
    return " ".join(words[:2]) if words[:1] == ["stack"] else (words[0] if words else "")


def stacks_of(job: Job, step: Step) -> set[str]:
    """The stacks a pulumi step runs on: its env STACK (pulumi-run reads it) or a pulumi/actions
    stack-name, matrix expanded."""
    name = (step.get("env") or {}).get("STACK") or inputs(step).get("stack-name") or ""
    return expand(job, str(name))


def permissions(node: dict[Any, Any]) -> dict[str, str] | None:
    """A workflow's or job's `permissions:` as a dict; None when it is not set at all."""
    if "permissions" not in node:
        return None
    value = node["permissions"]
    if isinstance(value, str):  # read-all / write-all
        return {"*": value}
    return dict(value or {})


def is_true(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"
