"""What the CI/CD workflows promise, one rule each. A rule returns its violations (empty: kept),
so the tests can show every rule both holding on the real files and catching a broken copy.
This module: the shape of ci, preview, deploy and drift. ci_safety.py: who can reach what;
ci_hygiene.py: rules for every workflow alike."""

from __future__ import annotations

import re
from collections.abc import Callable

from ci_make import depends_on, recipe_closure
from ci_model import (
    CI,
    ROOT,
    Job,
    action_of,
    inputs,
    is_true,
    jobs,
    permissions,
    pulumi_command,
    pulumi_runs,
    stacks_of,
    steps,
    triggers,
)

Rule = Callable[[CI], list[str]]
RULES: dict[str, Rule] = {}
SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository"
PREVIEW_PERMISSIONS = {"contents": "read", "pull-requests": "write", "id-token": "write"}
DIGEST_OUTPUT = "${{ needs.image.outputs.image }}"
CI_RUN = re.compile(r"\.ci/run(?:\s+(?P<target>[\w-]+))?")


def rule(fn: Rule) -> Rule:
    RULES[fn.__name__] = fn
    return fn


def ci_targets(ci: CI) -> dict[str, tuple[str, Job]]:
    """make target -> (job name, job) for each ci.yml job running `.ci/run [target]`."""
    found = {}
    for name, job in jobs(ci.workflows["ci"]).items():
        for s in steps(job):
            m = CI_RUN.search(str(s.get("run", "")))
            if m:
                found[m["target"] or "test"] = (name, job)
    return found


@rule
def ci_runs_the_ci_gate(ci: CI) -> list[str]:
    wf = ci.workflows["ci"]
    bad = [] if {"pull_request", "push"} <= set(triggers(wf)) else ["ci: not on PR and push"]
    ran = set(ci_targets(ci))
    makefile = ci.files.get("Makefile", "")
    covered = {t for t in ran for line in recipe_closure(makefile, t) if "pytest" in line}
    whole = {line for line in recipe_closure(makefile, "test") if "pytest" in line}
    in_ci = {line for t in covered for line in recipe_closure(makefile, t) if "pytest" in line}
    if not whole or not whole <= in_ci:
        bad.append(f"ci: its jobs ({sorted(ran)}) do not run all of `make test`")
    if not any({"lint", "typecheck", "rules"} <= depends_on(makefile, t) for t in ran):
        bad.append("ci: no job runs lint, typecheck and rules")
    return bad


@rule
def ci_needs_root_only_for_the_deploy_test(ci: CI) -> list[str]:
    """GitHub runs steps as an unprivileged user: only the deploy test may need root, and it
    runs as root (a container job) or through sudo keeping PATH."""
    bad = []
    makefile = ci.files.get("Makefile", "")
    for target, (name, job) in ci_targets(ci).items():
        as_root = "container" in job and "--user" not in str(job.get("container"))
        for line in recipe_closure(makefile, target):
            if "pytest" not in line or "--ignore=tests/deploy" in line:
                continue
            runs_deploy = "tests/deploy" in line or not re.search(r"pytest\b.*\btests/\w", line)
            keeps_path = "sudo" in line and "PATH=" in line
            if runs_deploy and not (as_root or keeps_path):
                bad.append(f"ci.{name}: `make {target}` reaches tests/deploy without root")
    return bad


@rule
def preview_only_on_pull_request(ci: CI) -> list[str]:
    bad = [
        f"{n}: pull_request_target"
        for n, w in ci.workflows.items()
        if "pull_request_target" in triggers(w)
    ]
    if set(triggers(ci.workflows["preview"])) != {"pull_request"}:
        bad.append(f"preview triggers: {sorted(triggers(ci.workflows['preview']))}")
    return bad


@rule
def preview_permissions_are_exactly_three(ci: CI) -> list[str]:
    wf = ci.workflows["preview"]
    granted = {}
    for node in [wf, *jobs(wf).values()]:
        granted.update(permissions(node) or {})
    bad = [] if granted == PREVIEW_PERMISSIONS else [f"preview grants {granted}"]
    bad += [
        f"preview.{n}: no permissions of its own"
        for n, j in jobs(wf).items()
        if permissions(j) is None and permissions(wf) != {}
    ]
    return bad


@rule
def preview_concurrency_per_pr_cancels(ci: CI) -> list[str]:
    group = ci.workflows["preview"].get("concurrency") or {}
    if (
        "github.event.pull_request.number" in str(group.get("group"))
        and group.get("cancel-in-progress") is True
    ):
        return []
    return [f"preview concurrency: {group}"]


@rule
def preview_builds_without_push_and_previews_with_policy(ci: CI) -> list[str]:
    wf = ci.workflows["preview"]
    bad = []
    builds = [
        s for j in jobs(wf).values() for s in steps(j) if action_of(s) == "docker/build-push-action"
    ]
    if not builds or any(is_true(inputs(s).get("push")) for s in builds):
        bad.append("preview: image not built, or pushed")
    covered: set[str] = set()
    for job in jobs(wf).values():
        for s, line in pulumi_runs(job):
            if pulumi_command(line) != "preview":
                continue
            covered |= stacks_of(job, s)
            if "--diff" not in line:
                bad.append("preview: no --diff")
            if (
                "--policy-pack policy" not in line
                or not (ROOT / "policy/PulumiPolicy.yaml").exists()
            ):
                bad.append("preview: policy pack from policy/ not applied")
    if covered != ci.stacks:
        bad.append(f"preview covers {sorted(covered)}, stacks are {sorted(ci.stacks)}")
    return bad


@rule
def preview_comments_on_the_pr_even_when_it_fails(ci: CI) -> list[str]:
    bad = []
    for name, job in jobs(ci.workflows["preview"]).items():
        runs = [s for s, line in pulumi_runs(job) if pulumi_command(line) == "preview"]
        if not runs:
            continue
        preview = runs[0]
        script = str(preview.get("run", ""))
        if "set +e" not in script or "exit-code=" not in script or "PIPESTATUS" not in script:
            bad.append(f"preview.{name}: a failing preview stops before its outcome is kept")
        later = steps(job)[steps(job).index(preview) + 1 :]
        comment = [s for s in later if "preview-comment" in str(s.get("run", ""))]
        guard = str(comment[0].get("if", "")) if comment else ""
        if not comment or not re.search(r"always\(\)|!cancelled\(\)", guard):
            bad.append(f"preview.{name}: no PR comment when the preview failed")
        fails = [s for s in later if "exit-code != '0'" in str(s.get("if", ""))]
        if not fails or "exit 1" not in str(fails[0].get("run", "")):
            bad.append(f"preview.{name}: a failed preview does not fail the job")
    if "tail -c" not in ci.files.get(".github/scripts/preview-comment", ""):
        bad.append("preview-comment: long logs are not cut to fit a comment")
    return bad


def up_jobs(ci: CI) -> dict[str, tuple[str, Job]]:
    """stack -> (job name, job) for each `pulumi up` in deploy.yml."""
    found = {}
    for name, job in jobs(ci.workflows["deploy"]).items():
        for s, line in pulumi_runs(job):
            if pulumi_command(line) in ("up", "update"):
                for stack in stacks_of(job, s):
                    found[stack] = (name, job)
    return found


@rule
def deploy_has_no_default_permissions(ci: CI) -> list[str]:
    wf = ci.workflows["deploy"]
    bad = [] if permissions(wf) == {} else [f"deploy top-level permissions: {permissions(wf)}"]
    bad += [f"deploy.{n}: no permissions" for n, j in jobs(wf).items() if permissions(j) is None]
    return bad


@rule
def deploy_builds_once_and_passes_the_digest_to_every_stack(ci: CI) -> list[str]:
    deploy = jobs(ci.workflows["deploy"])
    image = deploy.get("image") or {}
    builds = [
        (n, s)
        for n, j in deploy.items()
        for s in steps(j)
        if action_of(s) == "docker/build-push-action"
    ]
    if len(builds) != 1 or builds[0][0] != "image":
        return [f"deploy: {len(builds)} image builds, expected one in job `image`"]
    bad = []
    build = builds[0][1]
    if not is_true(inputs(build).get("push")) or "${{ github.sha }}" not in str(
        inputs(build).get("tags")
    ):
        bad.append("deploy: image not pushed with the commit tag")
    if "steps.existing.outputs.digest" not in str(build.get("if")):
        bad.append("deploy: a re-run rebuilds the commit's image instead of reusing it")
    output = str((image.get("outputs") or {}).get("image", ""))
    ref = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.image\s*\}\}", output)
    ref_step = next((s for s in steps(image) if ref and s.get("id") == ref.group(1)), {})
    digest = f"${{{{ steps.{build.get('id')}.outputs.digest }}}}"
    if digest not in (ref_step.get("env") or {}).values() or "sha256:[0-9a-f]{64}" not in str(
        ref_step.get("run")
    ):
        bad.append("deploy: the image output is not the checked digest of the build")
    ups = up_jobs(ci)
    if set(ups) != ci.stacks:
        bad.append(f"deploy runs up on {sorted(ups)}, stacks are {sorted(ci.stacks)}")
    for stack, (name, job) in ups.items():
        for s, line in pulumi_runs(job):
            env = s.get("env") or {}
            pinned = '--config "celery-fleet:image=$IMAGE"' in line
            if (
                not pinned
                or env.get("IMAGE") != DIGEST_OUTPUT
                or "image" not in (job.get("needs") or [])
            ):
                bad.append(f"deploy.{name}: {stack} does not get the built digest")
    return bad


@rule
def deploy_prod_after_dev_behind_environments(ci: CI) -> list[str]:
    ups = up_jobs(ci)
    if not {"dev", "prod"} <= set(ups):
        return ["deploy: no up for dev and prod"]
    dev_name, prod = ups["dev"][0], ups["prod"][1]
    bad = []
    if dev_name not in (prod.get("needs") or []):
        bad.append("deploy: prod does not need dev")
    for stack, (name, job) in ups.items():
        env = job.get("environment")
        env_name = env.get("name") if isinstance(env, dict) else env
        if env_name != stack:
            bad.append(f"deploy.{name}: environment {env_name!r}, expected {stack!r}")
    return bad


@rule
def deploy_concurrency_per_stack_never_cancels(ci: CI) -> list[str]:
    bad, groups = [], set()
    for stack, (name, job) in up_jobs(ci).items():
        conc = job.get("concurrency") or {}
        group = str(conc.get("group", "")) if isinstance(conc, dict) else str(conc)
        if group != f"pulumi-{stack}" or conc.get("cancel-in-progress") is not False:
            bad.append(f"deploy.{name}: concurrency {conc}, expected pulumi-{stack}, no cancel")
        groups.add(group)
    if len(groups) != len(up_jobs(ci)):
        bad.append("deploy: stacks share a concurrency group")
    return bad


@rule
def up_refreshes_first(ci: CI) -> list[str]:
    return [
        f"deploy.{name}: `pulumi up` without --refresh"
        for name, job in jobs(ci.workflows["deploy"]).items()
        for _, line in pulumi_runs(job)
        if pulumi_command(line) == "up" and "--refresh" not in line.split()
    ] or ([] if up_jobs(ci) else ["deploy: no pulumi up"])
