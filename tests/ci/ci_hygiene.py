"""Rules for every workflow alike: credentials, pins, timeouts, checkouts, the Pulumi CLI
version and stack names. Registered in ci_rules.RULES like the per-workflow rules."""

from __future__ import annotations

import re

from ci_model import (
    CI,
    ROOT,
    STACK_ACCESS,
    action_of,
    all_jobs,
    all_steps,
    inputs,
    permissions,
    pulumi_runs,
    stacks_of,
    steps,
)
from ci_rules import rule

AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"
ACCESS_KEYS = re.compile(
    r"aws-access-key-id|aws-secret-access-key|AWS_ACCESS_KEY_ID|"
    r"AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN"
)
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
SHA_PIN = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)(?:/[\w./-]+)?@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^\s+# (?P<version>v\d+\.\d+\.\d+)\s*$")
PULUMI_VERSION_FILE = ".pulumi-version"
BACKEND = {
    "PULUMI_BACKEND_URL": "${{ vars.PULUMI_BACKEND_URL }}",
    "PULUMI_ORGANIZATION": "${{ vars.PULUMI_ORGANIZATION }}",
}


@rule
def aws_only_by_oidc_role(ci: CI) -> list[str]:
    bad = [
        f"{path}: AWS access keys" for path, text in ci.texts.items() if ACCESS_KEYS.search(text)
    ]
    for where, step in all_steps(ci):
        if action_of(step) == AWS_CREDENTIALS and not inputs(step).get("role-to-assume"):
            bad.append(f"{where}: configure-aws-credentials without role-to-assume")
    for wf, name, job in all_jobs(ci):
        uses_aws = any(action_of(s) in (AWS_CREDENTIALS, STACK_ACCESS) for s in steps(job))
        if uses_aws and (permissions(job) or {}).get("id-token") != "write":
            bad.append(f"{wf}.{name}: uses AWS without id-token: write")
    return bad


@rule
def pulumi_jobs_get_aws_and_kubeconfig_first(ci: CI) -> list[str]:
    access = ci.actions.get("stack-access") or {}
    access_steps = (access.get("runs") or {}).get("steps") or []
    order = [action_of(s) or str(s.get("run", "")) for s in access_steps]
    creds = next((i for i, a in enumerate(order) if a == AWS_CREDENTIALS), None)
    kube = next((i for i, a in enumerate(order) if "aws eks update-kubeconfig" in a), None)
    bad = (
        []
        if creds is not None and kube is not None and creds < kube
        else ["stack-access: no OIDC credentials then `aws eks update-kubeconfig`"]
    )
    for wf, name, job in all_jobs(ci):
        job_steps = steps(job)
        runs = [job_steps.index(s) for s, _ in pulumi_runs(job)]
        if runs and not any(action_of(s) == STACK_ACCESS for s in job_steps[: min(runs)]):
            bad.append(f"{wf}.{name}: pulumi runs before stack access (AWS, kubeconfig)")
    return bad


@rule
def pulumi_cli_version_from_one_file(ci: CI) -> list[str]:
    bad = []
    version = ci.pulumi_version_file.strip()
    if not re.fullmatch(r"\d+\.\d+\.\d+", version) or version != ci.locked.get("pulumi"):
        bad.append(
            f"{PULUMI_VERSION_FILE} {version!r} is not the locked SDK {ci.locked.get('pulumi')}"
        )
    for where, s in all_steps(ci):
        w = inputs(s)
        if action_of(s) == "pulumi/actions" and (
            w.get("pulumi-version-file") != PULUMI_VERSION_FILE or "pulumi-version" in w
        ):
            bad.append(f"{where}: Pulumi CLI version not from {PULUMI_VERSION_FILE}")
    for wf, name, job in all_jobs(ci):
        for s, _ in pulumi_runs(job):
            env = s.get("env") or {}
            if action_of(s) == "pulumi/actions":  # logs in itself, to its cloud-url
                env = {"PULUMI_BACKEND_URL": inputs(s).get("cloud-url")}
            if any(env.get(k) != v for k, v in BACKEND.items() if k in env or not s.get("uses")):
                bad.append(f"{wf}.{name}: backend not from the documented vars")
    return bad


@rule
def third_party_actions_pinned_by_sha_with_version(ci: CI) -> list[str]:
    bad: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for path, text in ci.texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            m = USES.match(line)
            if not m or m["ref"].startswith(("$/", "./")):
                continue
            pin, comment = SHA_PIN.match(m["ref"]), VERSION_COMMENT.match(m["rest"])
            if not pin or not comment:
                bad.append(f"{path}:{number}: {m['ref']}{m['rest']} is not `@<sha> # vX.Y.Z`")
                continue
            key = (pin["action"], comment["version"])
            if seen.setdefault(key, pin["sha"]) != pin["sha"]:
                bad.append(f"{path}:{number}: {key} pinned to two SHAs")
    return bad


@rule
def every_job_has_a_timeout(ci: CI) -> list[str]:
    return [
        f"{wf}.{name}: no timeout-minutes"
        for wf, name, job in all_jobs(ci)
        # A job that calls a reusable workflow takes no timeout; the called jobs have theirs.
        if not isinstance(job.get("timeout-minutes"), int) and "uses" not in job
    ]


@rule
def checkouts_keep_no_credentials(ci: CI) -> list[str]:
    return [
        f"{where}: checkout persists credentials"
        for where, s in all_steps(ci)
        if action_of(s) == "actions/checkout" and inputs(s).get("persist-credentials") is not False
    ]


@rule
def stacks_named_exist(ci: CI) -> list[str]:
    bad = [] if ci.stacks else ["no Pulumi.<stack>.yaml"]
    for wf, name, job in all_jobs(ci):
        for s, _ in pulumi_runs(job):
            for stack in stacks_of(job, s) or {"<none>"}:
                if not (ROOT / f"Pulumi.{stack}.yaml").exists() or stack not in ci.stacks:
                    bad.append(f"{wf}.{name}: stack {stack!r} has no Pulumi.{stack}.yaml")
    return bad


@rule
def local_actions_and_workflows_exist(ci: CI) -> list[str]:
    """`$/path` (GitHub's self-repository form) and `./path` name files of this repo."""
    bad = []
    for path, text in ci.texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            m = USES.match(line)
            if not m or not m["ref"].startswith(("$/", "./")):
                continue
            target = ROOT / m["ref"][2:]
            if not (target.is_file() or (target / "action.yml").is_file()):
                bad.append(f"{path}:{number}: {m['ref']} does not exist")
    return bad
