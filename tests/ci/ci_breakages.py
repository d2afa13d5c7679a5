"""Copies of the real workflows broken the way a careless edit would break them, one or more
per rule in ci_rules.RULES: (rule name, what broke, mutation of a deep copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ci_model import CI, pulumi_steps, steps

Mutation = Callable[[CI], object]
SHA_CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"


def job(ci: CI, wf: str, name: str) -> dict[str, Any]:
    return ci.workflows[wf]["jobs"][name]  # type: ignore[no-any-return]


def pulumi_step(ci: CI, wf: str, name: str, command: str = "") -> dict[str, Any]:
    return next(
        s for s in pulumi_steps(job(ci, wf, name)) if not command or s["with"]["command"] == command
    )


def step_using(ci: CI, wf: str, name: str, action: str) -> dict[str, Any]:
    return next(s for s in steps(job(ci, wf, name)) if str(s.get("uses", "")).startswith(action))


def on(ci: CI, wf: str) -> dict[str, Any]:
    return ci.workflows[wf][True]  # type: ignore[no-any-return]  # YAML reads `on` as True


def edit_text(path: str, old: str, new: str, count: int = -1) -> Mutation:
    def mutate(ci: CI) -> None:
        assert old in ci.texts[path]
        ci.texts[path] = ci.texts[path].replace(old, new, count)

    return mutate


def set_in(getter: Callable[[CI], dict[Any, Any]], key: Any, value: Any) -> Mutation:
    def mutate(ci: CI) -> None:
        target = getter(ci)
        if value is DELETE:
            del target[key]
        else:
            target[key] = value

    return mutate


DELETE = object()
ACCESS = ".github/actions/stack-access/action.yml"
CI_YML = ".github/workflows/ci.yml"

BREAKAGES: list[tuple[str, str, Mutation]] = [
    ("ci_runs_the_ci_gate", "no push trigger", set_in(lambda c: on(c, "ci"), "push", DELETE)),
    (
        "ci_runs_the_ci_gate",
        "runs only lint",
        set_in(lambda c: steps(job(c, "ci", "test"))[-1], "run", "make lint"),
    ),
    (
        "preview_only_on_pull_request",
        "pull_request_target",
        set_in(lambda c: c.workflows["preview"], True, {"pull_request_target": None}),
    ),
    (
        "preview_only_on_pull_request",
        "also on push",
        set_in(lambda c: on(c, "preview"), "push", None),
    ),
    (
        "preview_skips_forks",
        "no fork guard",
        set_in(lambda c: job(c, "preview", "preview"), "if", DELETE),
    ),
    (
        "preview_permissions_are_exactly_three",
        "actions: write",
        set_in(lambda c: job(c, "preview", "preview")["permissions"], "actions", "write"),
    ),
    (
        "preview_permissions_are_exactly_three",
        "write-all at the top",
        set_in(lambda c: c.workflows["preview"], "permissions", "write-all"),
    ),
    (
        "preview_concurrency_per_pr_cancels",
        "superseded runs kept",
        set_in(lambda c: c.workflows["preview"]["concurrency"], "cancel-in-progress", False),
    ),
    (
        "preview_concurrency_per_pr_cancels",
        "one group for all PRs",
        set_in(lambda c: c.workflows["preview"]["concurrency"], "group", "preview"),
    ),
    (
        "preview_builds_without_push_and_previews_with_policy",
        "pushes",
        set_in(
            lambda c: step_using(c, "preview", "image", "docker/build-push")["with"], "push", True
        ),
    ),
    (
        "preview_builds_without_push_and_previews_with_policy",
        "no PR comment",
        set_in(
            lambda c: pulumi_step(c, "preview", "preview", "preview")["with"],
            "comment-on-pr",
            False,
        ),
    ),
    (
        "preview_builds_without_push_and_previews_with_policy",
        "no policy pack",
        set_in(
            lambda c: pulumi_step(c, "preview", "preview", "preview")["with"], "policyPacks", DELETE
        ),
    ),
    (
        "preview_builds_without_push_and_previews_with_policy",
        "prod not previewed",
        set_in(lambda c: job(c, "preview", "preview")["strategy"]["matrix"], "stack", ["dev"]),
    ),
    (
        "deploy_on_main_and_dispatch_with_no_default_permissions",
        "default write",
        set_in(lambda c: c.workflows["deploy"], "permissions", {"contents": "write"}),
    ),
    (
        "deploy_on_main_and_dispatch_with_no_default_permissions",
        "job without permissions",
        set_in(lambda c: job(c, "deploy", "dev"), "permissions", DELETE),
    ),
    (
        "deploy_on_main_and_dispatch_with_no_default_permissions",
        "every branch deploys",
        set_in(lambda c: on(c, "deploy")["push"], "branches", ["**"]),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "prod takes a tag",
        set_in(
            lambda c: pulumi_step(c, "deploy", "prod")["with"],
            "config-map",
            'celery-fleet:image: {value: "${{ vars.IMAGE_REPOSITORY }}:latest"}',
        ),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "image id, not digest",
        set_in(
            lambda c: steps(job(c, "deploy", "image"))[-1]["env"],
            "BUILT",
            "${{ steps.build.outputs.imageid }}",
        ),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "not pushed",
        set_in(
            lambda c: step_using(c, "deploy", "image", "docker/build-push")["with"], "push", False
        ),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "prod rebuilds",
        lambda c: job(c, "deploy", "prod")["steps"].append(
            step_using(c, "deploy", "image", "docker/build-push")
        ),
    ),
    (
        "deploy_prod_after_dev_behind_environments",
        "prod not after dev",
        set_in(lambda c: job(c, "deploy", "prod"), "needs", ["image"]),
    ),
    (
        "deploy_prod_after_dev_behind_environments",
        "prod without environment",
        set_in(lambda c: job(c, "deploy", "prod"), "environment", DELETE),
    ),
    (
        "deploy_concurrency_per_stack_never_cancels",
        "cancels an up",
        set_in(lambda c: job(c, "deploy", "prod")["concurrency"], "cancel-in-progress", True),
    ),
    (
        "deploy_concurrency_per_stack_never_cancels",
        "one group for both",
        lambda c: [
            job(c, "deploy", s)["concurrency"].update(group="pulumi-dev-prod")
            for s in ("dev", "prod")
        ],
    ),
    (
        "drift_scheduled_refresh_expect_no_changes",
        "not scheduled",
        set_in(lambda c: on(c, "drift"), "schedule", DELETE),
    ),
    (
        "drift_scheduled_refresh_expect_no_changes",
        "no refresh",
        set_in(lambda c: pulumi_step(c, "drift", "drift", "preview")["with"], "refresh", False),
    ),
    (
        "drift_scheduled_refresh_expect_no_changes",
        "changes allowed",
        set_in(
            lambda c: pulumi_step(c, "drift", "drift", "preview")["with"],
            "expect-no-changes",
            DELETE,
        ),
    ),
    (
        "no_up_in_preview_or_drift",
        "preview runs up",
        set_in(lambda c: pulumi_step(c, "preview", "preview", "preview")["with"], "command", "up"),
    ),
    (
        "no_up_in_preview_or_drift",
        "drift runs pulumi up --yes",
        lambda c: job(c, "drift", "drift")["steps"].append({"run": "pulumi up --yes -s prod"}),
    ),
    (
        "aws_only_by_oidc_role",
        "access keys",
        edit_text(
            ACCESS,
            "role-to-assume: ${{ inputs.role-to-assume }}",
            "aws-access-key-id: ${{ secrets.AWS_KEY }}",
        ),
    ),
    (
        "aws_only_by_oidc_role",
        "no role",
        set_in(
            lambda c: step_using(c, "deploy", "image", "aws-actions/configure")["with"],
            "role-to-assume",
            DELETE,
        ),
    ),
    (
        "aws_only_by_oidc_role",
        "no OIDC token",
        set_in(lambda c: job(c, "deploy", "prod")["permissions"], "id-token", DELETE),
    ),
    (
        "pulumi_jobs_get_aws_and_kubeconfig_first",
        "no stack access",
        lambda c: job(c, "drift", "drift")["steps"].pop(1),
    ),
    (
        "pulumi_jobs_get_aws_and_kubeconfig_first",
        "no kubeconfig",
        lambda c: c.actions["stack-access"]["runs"]["steps"].pop(),
    ),
    (
        "pulumi_cli_version_from_one_file",
        "CLI older than the SDK",
        lambda c: setattr(c, "pulumi_version_file", "3.100.0\n"),
    ),
    (
        "pulumi_cli_version_from_one_file",
        "version inline",
        lambda c: pulumi_step(c, "deploy", "dev")["with"].update(
            {"pulumi-version": "3.272.0", "pulumi-version-file": None}
        ),
    ),
    (
        "pulumi_cli_version_from_one_file",
        "backend hard-coded",
        set_in(lambda c: pulumi_step(c, "deploy", "prod")["with"], "cloud-url", "s3://bucket"),
    ),
    (
        "third_party_actions_pinned_by_sha_with_version",
        "tag pin",
        edit_text(CI_YML, f"{SHA_CHECKOUT} # v7.0.1", "actions/checkout@v7 # v7.0.1"),
    ),
    (
        "third_party_actions_pinned_by_sha_with_version",
        "no version comment",
        edit_text(CI_YML, f"{SHA_CHECKOUT} # v7.0.1", SHA_CHECKOUT),
    ),
    (
        "third_party_actions_pinned_by_sha_with_version",
        "one version, two SHAs",
        edit_text(CI_YML, SHA_CHECKOUT, "actions/checkout@" + "0" * 40, 1),
    ),
    (
        "every_job_has_a_timeout",
        "no timeout",
        set_in(lambda c: job(c, "deploy", "prod"), "timeout-minutes", DELETE),
    ),
    (
        "checkouts_keep_no_credentials",
        "credentials kept",
        set_in(lambda c: steps(job(c, "ci", "test"))[0], "with", {}),
    ),
    (
        "stacks_named_exist",
        "a stack with no file",
        set_in(lambda c: pulumi_step(c, "deploy", "prod")["with"], "stack-name", "production"),
    ),
]
