"""What the CI/CD workflows promise, one rule each. A rule returns its violations (empty: kept),
so the tests can show every rule both holding on the real files and catching a broken copy."""

from __future__ import annotations

import re
from collections.abc import Callable

import yaml
from ci_model import (
    CI,
    ROOT,
    Job,
    action_of,
    inputs,
    is_true,
    jobs,
    permissions,
    pulumi_steps,
    stacks_of,
    steps,
    triggers,
)

Rule = Callable[[CI], list[str]]
RULES: dict[str, Rule] = {}
SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository"
PREVIEW_PERMISSIONS = {"contents": "read", "pull-requests": "write", "id-token": "write"}
MUTATING = {"up", "update", "destroy", "refresh"}
DIGEST_OUTPUT = "${{ needs.image.outputs.image }}"


def rule(fn: Rule) -> Rule:
    RULES[fn.__name__] = fn
    return fn


@rule
def ci_runs_the_ci_gate(ci: CI) -> list[str]:
    wf = ci.workflows["ci"]
    bad = [] if {"pull_request", "push"} <= set(triggers(wf)) else ["ci: not on PR and push"]
    if not any(".ci/run" in str(s.get("run")) for j in jobs(wf).values() for s in steps(j)):
        bad.append("ci: does not run .ci/run (make test)")
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
def preview_skips_forks(ci: CI) -> list[str]:
    return [
        f"preview.{name}: runs with secrets/OIDC on fork PRs"
        for name, job in jobs(ci.workflows["preview"]).items()
        if ((permissions(job) or {}).get("id-token") == "write" or "secrets." in str(job))
        and SAME_REPO not in str(job.get("if", ""))
    ]


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
        for s in pulumi_steps(job):
            if inputs(s).get("command") != "preview":
                continue
            covered |= stacks_of(job, s)
            w = inputs(s)
            if not (is_true(w.get("comment-on-pr")) and is_true(w.get("diff"))):
                bad.append("preview: no PR comment or no diff")
            if w.get("policyPacks") != "policy" or not (ROOT / "policy/PulumiPolicy.yaml").exists():
                bad.append("preview: policy pack from policy/ not applied")
    if covered != ci.stacks:
        bad.append(f"preview covers {sorted(covered)}, stacks are {sorted(ci.stacks)}")
    return bad


def _up_jobs(ci: CI) -> dict[str, tuple[str, Job]]:
    """stack -> (job name, job) for each `pulumi up` in deploy.yml."""
    found = {}
    for name, job in jobs(ci.workflows["deploy"]).items():
        for s in pulumi_steps(job):
            if inputs(s).get("command") in ("up", "update"):
                for stack in stacks_of(job, s):
                    found[stack] = (name, job)
    return found


@rule
def deploy_on_main_and_dispatch_with_no_default_permissions(ci: CI) -> list[str]:
    wf = ci.workflows["deploy"]
    on = triggers(wf)
    bad = [] if set(on) == {"push", "workflow_dispatch"} else [f"deploy triggers {sorted(on)}"]
    if (on.get("push") or {}).get("branches") != ["main"]:
        bad.append("deploy: push is not limited to main")
    if permissions(wf) != {}:
        bad.append(f"deploy top-level permissions: {permissions(wf)}")
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
    bad = []
    if len(builds) != 1 or builds[0][0] != "image":
        return [f"deploy: {len(builds)} image builds, expected one in job `image`"]
    build = builds[0][1]
    if not is_true(inputs(build).get("push")) or "${{ github.sha }}" not in str(
        inputs(build).get("tags")
    ):
        bad.append("deploy: image not pushed with the commit tag")
    output = str((image.get("outputs") or {}).get("image", ""))
    ref = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.image\s*\}\}", output)
    ref_step = next((s for s in steps(image) if ref and s.get("id") == ref.group(1)), {})
    digest = f"${{{{ steps.{build.get('id')}.outputs.digest }}}}"
    if digest not in (ref_step.get("env") or {}).values() or "sha256:[0-9a-f]{64}" not in str(
        ref_step.get("run")
    ):
        bad.append("deploy: the image output is not the checked digest of the build")
    ups = _up_jobs(ci)
    if set(ups) != ci.stacks:
        bad.append(f"deploy runs up on {sorted(ups)}, stacks are {sorted(ci.stacks)}")
    for stack, (name, job) in ups.items():
        needs = job.get("needs") or []
        for s in pulumi_steps(job):
            config = inputs(s).get("config-map")
            value = (yaml.safe_load(config) or {}) if isinstance(config, str) else {}
            pinned = (value.get("celery-fleet:image") or {}).get("value")
            if pinned != DIGEST_OUTPUT or "image" not in needs:
                bad.append(f"deploy.{name}: {stack} does not get the built digest")
    return bad


@rule
def deploy_prod_after_dev_behind_environments(ci: CI) -> list[str]:
    ups = _up_jobs(ci)
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
    for stack, (name, job) in _up_jobs(ci).items():
        conc = job.get("concurrency") or {}
        group = str(conc.get("group", "")) if isinstance(conc, dict) else str(conc)
        if (
            stack not in group
            or not isinstance(conc, dict)
            or conc.get("cancel-in-progress") is not False
        ):
            bad.append(f"deploy.{name}: concurrency {conc}")
        groups.add(group)
    if len(groups) != len(_up_jobs(ci)):
        bad.append("deploy: stacks share a concurrency group")
    return bad


@rule
def drift_scheduled_refresh_expect_no_changes(ci: CI) -> list[str]:
    wf = ci.workflows["drift"]
    bad = [] if "schedule" in triggers(wf) else ["drift: not scheduled"]
    covered: set[str] = set()
    for job in jobs(wf).values():
        for s in pulumi_steps(job):
            if inputs(s).get("command") == "preview":
                covered |= stacks_of(job, s)
                if not (
                    is_true(inputs(s).get("refresh"))
                    and is_true(inputs(s).get("expect-no-changes"))
                ):
                    bad.append("drift: preview without --refresh --expect-no-changes")
    if covered != ci.stacks:
        bad.append(f"drift covers {sorted(covered)}, stacks are {sorted(ci.stacks)}")
    return bad


@rule
def no_up_in_preview_or_drift(ci: CI) -> list[str]:
    bad = []
    for wf_name in ("preview", "drift"):
        for name, job in jobs(ci.workflows[wf_name]).items():
            for s in steps(job):
                if action_of(s) == "pulumi/actions" and inputs(s).get("command") in MUTATING:
                    bad.append(f"{wf_name}.{name}: pulumi {inputs(s).get('command')}")
                if re.search(r"pulumi\s+(up|update|destroy|refresh)\b", str(s.get("run", ""))):
                    bad.append(f"{wf_name}.{name}: runs a mutating pulumi command")
    return bad
