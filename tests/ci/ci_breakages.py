"""Copies of the real workflows broken the way a careless edit would break them, one or more
per rule of ci_rules.py (the shape of ci, preview, deploy, drift) and of ci_hygiene.py:
(rule name, what broke, mutation of a deep copy). ci_breakages_safety.py lists the others."""

from __future__ import annotations

from ci_model import steps
from ci_mutations import (
    ACCESS,
    CI_YML,
    DELETE,
    DRIFT_YML,
    NO_SUDO,
    SHA_CHECKOUT,
    Mutation,
    access_step,
    edit_run,
    edit_text,
    job,
    on,
    set_in,
    step,
    up,
)

BREAKAGES: list[tuple[str, str, Mutation]] = [
    ("ci_runs_the_ci_gate", "no push trigger", set_in(lambda c: on(c, "ci"), "push", DELETE)),
    (
        "ci_runs_the_ci_gate",
        "the deploy test never runs",
        lambda c: job(c, "ci", "deploy-test")["steps"].pop(),
    ),
    (
        "ci_runs_the_ci_gate",
        "runs only the tests, no lint",
        edit_text("Makefile", "test-no-root: setup lint typecheck rules", "test-no-root: setup"),
    ),
    (
        "ci_needs_root_only_for_the_deploy_test",
        "make test as the runner's user, no sudo (today's)",
        lambda c: [
            edit_run("ci", "test", ".ci/run", ".ci/run test-no-root", ".ci/run")(c),
            NO_SUDO(c),
        ],
    ),
    (
        "ci_needs_root_only_for_the_deploy_test",
        "the suite no longer leaves the deploy test out",
        edit_text("Makefile", " --ignore=tests/deploy", ""),
    ),
    (
        "ci_needs_root_only_for_the_deploy_test",
        "deploy test as the runner's user, no sudo",
        lambda c: [
            set_in(lambda c: job(c, "ci", "deploy-test"), "container", DELETE)(c),
            NO_SUDO(c),
        ],
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
        set_in(lambda c: step(c, "preview", "image", "docker/build-push")["with"], "push", True),
    ),
    (
        "preview_builds_without_push_and_previews_with_policy",
        "no policy pack",
        edit_run("preview", "preview", "pulumi-run preview", "--policy-pack policy", ""),
    ),
    (
        "preview_builds_without_push_and_previews_with_policy",
        "prod not previewed",
        lambda c: job(c, "preview", "preview")["strategy"]["matrix"]["include"].pop(),
    ),
    (
        "preview_comments_on_the_pr_even_when_it_fails",
        "comment only after a successful preview",
        set_in(lambda c: step(c, "preview", "preview", "preview-comment"), "if", DELETE),
    ),
    (
        "preview_comments_on_the_pr_even_when_it_fails",
        "a failing preview ends the job at once",
        edit_run("preview", "preview", "pulumi-run preview", "set +e\n", ""),
    ),
    (
        "preview_comments_on_the_pr_even_when_it_fails",
        "a failed preview passes",
        lambda c: job(c, "preview", "preview")["steps"].pop(),
    ),
    (
        "preview_comments_on_the_pr_even_when_it_fails",
        "a long log overflows the comment",
        edit_text(".github/scripts/preview-comment", "tail -c", "cat"),
    ),
    (
        "deploy_has_no_default_permissions",
        "default write",
        set_in(lambda c: c.workflows["deploy"], "permissions", {"contents": "write"}),
    ),
    (
        "deploy_has_no_default_permissions",
        "job without permissions",
        set_in(lambda c: job(c, "deploy", "dev"), "permissions", DELETE),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "prod takes a tag",
        set_in(lambda c: up()(c)["env"], "IMAGE", "${{ vars.IMAGE_REPOSITORY }}:latest"),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "image id, not digest",
        set_in(
            lambda c: step(c, "deploy", "image", "Image reference")["env"],
            "BUILT",
            "${{ steps.build.outputs.imageid }}",
        ),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "not pushed",
        set_in(lambda c: step(c, "deploy", "image", "docker/build-push")["with"], "push", False),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "a re-run rebuilds",
        set_in(lambda c: step(c, "deploy", "image", "docker/build-push"), "if", DELETE),
    ),
    (
        "deploy_builds_once_and_passes_the_digest_to_every_stack",
        "prod rebuilds",
        lambda c: job(c, "deploy", "prod")["steps"].append(
            step(c, "deploy", "image", "docker/build-push")
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
        "up_refreshes_first",
        "up without refresh",
        edit_run("deploy", "dev", "pulumi-run up", "--refresh ", ""),
    ),
    (
        "aws_only_by_oidc_role",
        "access keys",
        edit_text(
            ACCESS,
            "role-to-assume: ${{ inputs.role-to-assume }}",
            "aws-access-key-id: ${{ inputs.key }}",
        ),
    ),
    (
        "aws_only_by_oidc_role",
        "no role",
        set_in(
            lambda c: step(c, "deploy", "image", "aws-actions/configure")["with"],
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
        lambda c: job(c, "drift", "drift")["steps"].remove(
            step(c, "drift", "drift", "stack-access")
        ),
    ),
    (
        "pulumi_jobs_get_aws_and_kubeconfig_first",
        "no kubeconfig",
        lambda c: c.actions["stack-access"]["runs"]["steps"].remove(
            access_step(c, "update-kubeconfig")
        ),
    ),
    (
        "pulumi_cli_version_from_one_file",
        "CLI older than the SDK",
        lambda c: setattr(c, "pulumi_version_file", "3.100.0\n"),
    ),
    (
        "pulumi_cli_version_from_one_file",
        "version inline",
        lambda c: access_step(c, "pulumi/actions")["with"].update(
            {"pulumi-version": "3.272.0", "pulumi-version-file": None}
        ),
    ),
    (
        "pulumi_cli_version_from_one_file",
        "backend hard-coded",
        set_in(lambda c: up()(c)["env"], "PULUMI_BACKEND_URL", "s3://bucket"),
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
        set_in(lambda c: up()(c)["env"], "STACK", "production"),
    ),
    (
        "local_actions_and_workflows_exist",
        "a misspelt local action",
        edit_text(DRIFT_YML, "$/.github/actions/stack-access", "$/.github/actions/stack-acess"),
    ),
]
