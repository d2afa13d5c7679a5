"""Who can reach what: PR code never holds a long-lived credential or a write identity, prod is
read by untrusted code only after approval, no secret output reaches a step output, a missing
variable fails instead of pointing at another cluster, and only what passed ci (and is still
main's head) deploys. Registered in ci_rules.RULES like the shape rules."""

from __future__ import annotations

import re

from ci_model import (
    CI,
    PULUMI_ACTION,
    SECRET_REF,
    STACK_ACCESS,
    Job,
    action_of,
    all_jobs,
    all_steps,
    expand,
    inputs,
    jobs,
    matrix_values,
    pulumi_command,
    pulumi_runs,
    stacks_of,
    steps,
    triggers,
)
from ci_rules import SAME_REPO, rule, up_jobs

NOT_DEPENDABOT = "github.event.pull_request.user.login != 'dependabot[bot]'"
TOKEN_OUTPUT = "${{ steps.access.outputs.pulumi-access-token }}"
OPTIONAL_VARS = {"PULUMI_BACKEND_URL", "PULUMI_ORGANIZATION"}  # one or the other: stack-access
DEPLOY_CALL = "$/.github/workflows/deploy.yml"
DOCS_ONLY = r"(\.md$|^docs/)"


def _names_vars(job: Job) -> set[str]:
    return set(re.findall(r"\bvars\.([A-Z0-9_]+)", str(job))) - OPTIONAL_VARS


@rule
def preview_skips_forks_and_dependabot_with_a_notice(ci: CI) -> list[str]:
    bad = []
    wf_jobs = jobs(ci.workflows["preview"])
    for name, job in wf_jobs.items():
        reaches = any(action_of(s) == STACK_ACCESS for s in steps(job)) or bool(
            SECRET_REF.search(str(job))
        )
        guard = str(job.get("if", ""))
        if reaches and not (SAME_REPO in guard and NOT_DEPENDABOT in guard):
            bad.append(f"preview.{name}: runs with OIDC/secrets on fork or Dependabot PRs")
    notices = [
        j
        for j in wf_jobs.values()
        if "!= github.repository" in str(j.get("if"))
        and "== 'dependabot[bot]'" in str(j.get("if"))
        and "::notice" in str(j.get("steps"))
    ]
    if not notices:
        bad.append("preview: skipped previews (forks, Dependabot) say nothing")
    return bad


@rule
def no_long_lived_pulumi_token(ci: CI) -> list[str]:
    bad = [
        f"{path}: uses a repository secret" for path, t in ci.texts.items() if SECRET_REF.search(t)
    ]
    for wf_name, workflow in ci.workflows.items():
        if "PULUMI_ACCESS_TOKEN" in str(workflow.get("env")):
            bad.append(f"{wf_name}: PULUMI_ACCESS_TOKEN in the workflow's env")
    for wf, name, job in all_jobs(ci):
        if "PULUMI_ACCESS_TOKEN" in str(job.get("env")):
            bad.append(f"{wf}.{name}: PULUMI_ACCESS_TOKEN in the job's env (every step sees it)")
        for s in steps(job):
            token = (s.get("env") or {}).get("PULUMI_ACCESS_TOKEN")
            if token is not None and token != TOKEN_OUTPUT:
                bad.append(f"{wf}.{name}: PULUMI_ACCESS_TOKEN from {token}")
            if token is not None and not any(st is s for st, _ in pulumi_runs(job)):
                bad.append(f"{wf}.{name}: the Pulumi token on a step that runs no pulumi")
    access = (ci.actions.get("stack-access") or {}).get("runs", {}).get("steps") or []
    exchange = [s for s in access if action_of(s) == "pulumi/auth-actions"]
    if not exchange or str(inputs(exchange[0]).get("export-environment-variables")) != "False":
        bad.append("stack-access: no OIDC token exchange, or its token exported to the job")
    order = [str(s.get("run", "")) or action_of(s) for s in access]
    venv = next((i for i, a in enumerate(order) if "make venv" in a), None)
    creds = next((i for i, a in enumerate(order) if "configure-aws-credentials" in a), None)
    if venv is None or creds is None or venv > creds:
        bad.append("stack-access: the venv is built with credentials in reach")
    return bad


@rule
def previews_use_read_only_identities_prod_behind_approval(ci: CI) -> list[str]:
    bad = []
    for wf_name, kind in (("preview", "preview"), ("drift", "drift")):
        for name, job in jobs(ci.workflows[wf_name]).items():
            if not any(action_of(s) == STACK_ACCESS for s in steps(job)):
                continue
            text = str(job)
            if "AWS_DEPLOY_ROLE_ARN" in text or "vars.AWS_PREVIEW_ROLE_ARN" not in text:
                bad.append(f"{wf_name}.{name}: not the read-only preview role")
            envs = expand(job, str(job.get("environment", "")))
            stacks = set(matrix_values(job, "stack"))
            if envs != {f"{kind}-{s}" for s in stacks} or not stacks:
                bad.append(f"{wf_name}.{name}: Environments {sorted(envs)}, not {kind}-<stack>")
            if "celery-fleet-preview" not in text:
                bad.append(f"{wf_name}.{name}: not the Pulumi preview team's token")
    return bad


@rule
def no_secret_outputs_in_step_outputs(ci: CI) -> list[str]:
    bad = []
    for where, s in all_steps(ci):
        if action_of(s) == PULUMI_ACTION and inputs(s).get("command"):
            bad.append(f"{where}: pulumi/actions runs a command (it copies every output)")
    for wf, name, job in all_jobs(ci):
        for _, line in pulumi_runs(job):
            if "--show-secrets" in line:
                bad.append(f"{wf}.{name}: --show-secrets")
            if pulumi_command(line) == "stack output" and line.split()[2:3] != ["image"]:
                bad.append(f"{wf}.{name}: reads stack outputs other than `image`")
    return bad


@rule
def missing_variable_fails_the_job(ci: CI) -> list[str]:
    bad = [
        f"{path}: falls back to another variable"
        for path, text in ci.texts.items()
        if re.search(r"(&&|\|\|)\s*vars\.", text)
    ]
    for wf, name, job in all_jobs(ci):
        needed = _names_vars(job)
        if not needed:
            continue
        checks = [s for s in steps(job) if "require-vars" in str(s.get("run", ""))]
        if not checks:
            bad.append(f"{wf}.{name}: uses {sorted(needed)} without require-vars")
            continue
        check = checks[0]
        env, args = check.get("env") or {}, str(check.get("run"))
        clusters = set(matrix_values(job, "cluster-variable"))
        for var in sorted(needed):
            named = var in args or (var in clusters and '"$CLUSTER_VARIABLE"' in args)
            if env.get(var) != f"${{{{ vars.{var} }}}}" or not named:
                bad.append(f"{wf}.{name}: require-vars does not check {var}")
        uses = [i for i, s in enumerate(steps(job)) if "vars." in str(s.get("with"))]
        if uses and min(uses) < steps(job).index(check):
            bad.append(f"{wf}.{name}: a variable is used before require-vars")
    if "::error" not in ci.files.get(".github/scripts/require-vars", ""):
        bad.append("require-vars: does not report the missing name")
    return bad


@rule
def deploy_runs_only_after_ci_passed(ci: CI) -> list[str]:
    on = set(triggers(ci.workflows["deploy"]))
    bad = [] if on == {"workflow_call", "workflow_dispatch"} else [f"deploy triggers {on}"]
    callers = [
        (n, j) for n, j in jobs(ci.workflows["ci"]).items() if str(j.get("uses")) == DEPLOY_CALL
    ]
    if len(callers) != 1:
        return [*bad, "ci: no single job calls deploy.yml"]
    name, job = callers[0]
    gates = {n for n, j in jobs(ci.workflows["ci"]).items() if ".ci/run" in str(j.get("steps"))}
    if not gates or not gates <= set(job.get("needs") or []):
        bad.append(f"ci.{name}: deploys without waiting for {sorted(gates)}")
    guard = str(job.get("if", ""))
    if "github.event_name == 'push'" not in guard or "refs/heads/main" not in guard:
        bad.append(f"ci.{name}: deploys from pull requests or other branches")
    return bad


@rule
def deploy_refuses_a_commit_that_is_not_mains_head(ci: CI) -> list[str]:
    bad = []
    for stack, (name, job) in up_jobs(ci).items():
        job_steps = steps(job)
        checks = [i for i, s in enumerate(job_steps) if "require-main-head" in str(s.get("run"))]
        first_up = min(job_steps.index(s) for s, _ in pulumi_runs(job))
        if not checks or checks[0] > first_up:
            bad.append(f"deploy.{name}: {stack} deploys without checking main's head")
        elif "GH_TOKEN" not in (job_steps[checks[0]].get("env") or {}):
            bad.append(f"deploy.{name}: the head check has no token")
    script = ci.files.get(".github/scripts/require-main-head", "")
    if not all(k in script for k in ("commits/main", "GITHUB_SHA", "exit 1", "ci.yml/runs")):
        bad.append("require-main-head: does not compare with main's head or ci's result")
    return bad


@rule
def drift_is_refresh_preview_only_in_the_deploy_group(ci: CI) -> list[str]:
    wf = ci.workflows["drift"]
    bad = [] if "schedule" in triggers(wf) else ["drift: not scheduled"]
    covered: set[str] = set()
    for name, job in jobs(wf).items():
        for s, line in pulumi_runs(job):
            if pulumi_command(line) != "refresh":
                continue
            covered |= stacks_of(job, s)
            if not {"--preview-only", "--expect-no-changes"} <= set(line.split()):
                bad.append(f"drift.{name}: not `refresh --preview-only --expect-no-changes`")
            script = str(s.get("run"))
            if "GITHUB_STEP_SUMMARY" not in script or 'exit "$status"' not in script:
                bad.append(f"drift.{name}: drift is not reported in the summary and the run")
        conc = job.get("concurrency") or {}
        if conc.get("group") != "pulumi-${{ matrix.stack }}" or conc.get("cancel-in-progress"):
            bad.append(f"drift.{name}: not in the stack's deploy concurrency group")
    if covered != ci.stacks:
        bad.append(f"drift covers {sorted(covered)}, stacks are {sorted(ci.stacks)}")
    return bad


@rule
def no_mutation_in_preview_or_drift(ci: CI) -> list[str]:
    bad = []
    for wf_name in ("preview", "drift"):
        for name, job in jobs(ci.workflows[wf_name]).items():
            for s in steps(job):
                script = str(s.get("run", ""))
                for m in re.finditer(
                    r"(?:pulumi|pulumi-run)\s+(up|update|destroy|refresh)\b", script
                ):
                    if m.group(1) != "refresh" or "--preview-only" not in script:
                        bad.append(f"{wf_name}.{name}: runs pulumi {m.group(1)}")
    return bad


@rule
def docs_only_pushes_deploy_nothing(ci: CI) -> list[str]:
    wf = jobs(ci.workflows["ci"])
    callers = [j for j in wf.values() if str(j.get("uses")) == DEPLOY_CALL]
    changes = wf.get("changes") or {}
    bad = []
    if not callers or "needs.changes.outputs.deploy == 'true'" not in str(callers[0].get("if")):
        bad.append("ci: the deploy does not depend on what changed")
    if DOCS_ONLY not in "".join(str(s.get("run")) for s in steps(changes)):
        bad.append("ci.changes: no documentation-only filter")
    return bad
