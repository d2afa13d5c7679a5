"""Copies of the real CI files broken the way a careless edit would break them, for the rules
of ci_safety.py and ci_supply_chain.py: (rule name, what broke, mutation)."""

from __future__ import annotations

from ci_mutations import (
    DELETE,
    DEPLOY_YML,
    DRIFT_YML,
    Mutation,
    access_step,
    edit_run,
    edit_text,
    job,
    on,
    set_in,
    step,
)

SAFETY_BREAKAGES: list[tuple[str, str, Mutation]] = [
    (
        "preview_skips_forks_and_dependabot_with_a_notice",
        "no fork guard",
        set_in(lambda c: job(c, "preview", "preview"), "if", DELETE),
    ),
    (
        "preview_skips_forks_and_dependabot_with_a_notice",
        "Dependabot previews fail for want of credentials",
        set_in(
            lambda c: job(c, "preview", "preview"),
            "if",
            "github.event.pull_request.head.repo.full_name == github.repository",
        ),
    ),
    (
        "preview_skips_forks_and_dependabot_with_a_notice",
        "skipped in silence",
        set_in(lambda c: c.workflows["preview"]["jobs"], "skipped", DELETE),
    ),
    (
        "no_long_lived_pulumi_token",
        "token in the job's env (today's)",
        set_in(
            lambda c: job(c, "deploy", "prod"),
            "env",
            {"PULUMI_ACCESS_TOKEN": "${{ steps.access.outputs.pulumi-access-token }}"},
        ),
    ),
    (
        "no_long_lived_pulumi_token",
        "a repository secret",
        edit_text(
            DEPLOY_YML,
            "PULUMI_ACCESS_TOKEN: ${{ steps.access.outputs.pulumi-access-token }}",
            "PULUMI_ACCESS_TOKEN: ${{ secrets.PULUMI_ACCESS_TOKEN }}",
            1,
        ),
    ),
    (
        "no_long_lived_pulumi_token",
        "token exported to every later step",
        set_in(
            lambda c: access_step(c, "pulumi/auth-actions")["with"],
            "export-environment-variables",
            True,
        ),
    ),
    (
        "no_long_lived_pulumi_token",
        "venv built with credentials",
        lambda c: c.actions["stack-access"]["runs"]["steps"].append(
            c.actions["stack-access"]["runs"]["steps"].pop(2)
        ),
    ),
    (
        "previews_use_read_only_identities_prod_behind_approval",
        "preview with the deploy role",
        set_in(
            lambda c: step(c, "preview", "preview", "stack-access")["with"],
            "role-to-assume",
            "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
        ),
    ),
    (
        "previews_use_read_only_identities_prod_behind_approval",
        "prod preview without its approval Environment",
        set_in(lambda c: job(c, "preview", "preview"), "environment", DELETE),
    ),
    (
        "no_secret_outputs_in_step_outputs",
        "every output copied (today's `command: output`)",
        set_in(lambda c: access_step(c, "pulumi/actions")["with"], "command", "output"),
    ),
    (
        "no_secret_outputs_in_step_outputs",
        "the broker URL read",
        edit_run(
            "preview", "preview", "stack output", "stack output image", "stack output broker_url"
        ),
    ),
    (
        "missing_variable_fails_the_job",
        "silent fallback to the dev cluster (today's)",
        edit_text(
            DRIFT_YML,
            "cluster: ${{ matrix.cluster }}",
            "cluster: ${{ matrix.stack == 'prod' && vars.EKS_CLUSTER_PROD"
            " || vars.EKS_CLUSTER_DEV }}",
        ),
    ),
    (
        "missing_variable_fails_the_job",
        "a variable not checked",
        edit_run("deploy", "prod", "require-vars", " EKS_CLUSTER_PROD", ""),
    ),
    (
        "missing_variable_fails_the_job",
        "no check at all",
        lambda c: job(c, "deploy", "image")["steps"].pop(1),
    ),
    (
        "deploy_runs_only_after_ci_passed",
        "deploys on every push (today's)",
        set_in(lambda c: on(c, "deploy"), "push", {"branches": ["main"]}),
    ),
    (
        "deploy_runs_only_after_ci_passed",
        "does not wait for the tests",
        set_in(lambda c: job(c, "ci", "deploy"), "needs", ["changes"]),
    ),
    (
        "deploy_runs_only_after_ci_passed",
        "deploys pull requests",
        set_in(lambda c: job(c, "ci", "deploy"), "if", "needs.changes.outputs.deploy == 'true'"),
    ),
    (
        "deploy_refuses_a_commit_that_is_not_mains_head",
        "a late approval deploys an old commit",
        lambda c: job(c, "deploy", "prod")["steps"].pop(1),
    ),
    (
        "deploy_refuses_a_commit_that_is_not_mains_head",
        "the check compares nothing",
        edit_text(".github/scripts/require-main-head", "commits/main", "commits/HEAD"),
    ),
    (
        "drift_is_refresh_preview_only_in_the_deploy_group",
        "preview --refresh (today's)",
        edit_run("drift", "drift", "pulumi-run", "refresh --preview-only", "preview --refresh"),
    ),
    (
        "drift_is_refresh_preview_only_in_the_deploy_group",
        "may overlap an up",
        set_in(lambda c: job(c, "drift", "drift")["concurrency"], "group", "drift"),
    ),
    (
        "drift_is_refresh_preview_only_in_the_deploy_group",
        "drift passes quietly",
        edit_run("drift", "drift", "pulumi-run", 'exit "$status"', "exit 0"),
    ),
    (
        "drift_is_refresh_preview_only_in_the_deploy_group",
        "not scheduled",
        set_in(lambda c: on(c, "drift"), "schedule", DELETE),
    ),
    (
        "no_mutation_in_preview_or_drift",
        "preview runs up",
        edit_run("preview", "preview", "pulumi-run preview", "pulumi-run preview", "pulumi-run up"),
    ),
    (
        "no_mutation_in_preview_or_drift",
        "drift really refreshes",
        edit_run("drift", "drift", "pulumi-run", "--preview-only ", ""),
    ),
    (
        "docs_only_pushes_deploy_nothing",
        "deploys on docs-only pushes",
        set_in(
            lambda c: job(c, "ci", "deploy"),
            "if",
            "github.event_name == 'push' && github.ref == 'refs/heads/main'",
        ),
    ),
    (
        "caches_layers_venv_and_plugins",
        "no layer cache",
        set_in(
            lambda c: step(c, "deploy", "image", "docker/build-push")["with"], "cache-from", DELETE
        ),
    ),
    (
        "caches_layers_venv_and_plugins",
        "a PR seeds main's layer cache",
        set_in(
            lambda c: step(c, "preview", "image", "docker/build-push")["with"],
            "cache-to",
            "type=gha,mode=max",
        ),
    ),
    (
        "caches_layers_venv_and_plugins",
        "plugins downloaded every time",
        lambda c: c.actions["stack-access"]["runs"]["steps"].remove(
            access_step(c, "Pulumi plugin cache")
        ),
    ),
    (
        "locks_have_hashes_and_every_install_requires_them",
        "a pin without hashes",
        edit_text("requirements.lock", "aiosmtpd==1.4.6 \\\n", "aiosmtpd==1.4.6\n#"),
    ),
    (
        "locks_have_hashes_and_every_install_requires_them",
        "hashes not required in the venv",
        edit_text("Makefile", " --require-hashes -r requirements.lock", " -r requirements.lock"),
    ),
    (
        "locks_have_hashes_and_every_install_requires_them",
        "hashes not required in the image",
        edit_text("Dockerfile", " --require-hashes", ""),
    ),
    (
        "locks_have_hashes_and_every_install_requires_them",
        "make lock drops the hashes",
        edit_text("Makefile", " --generate-hashes", ""),
    ),
    (
        "docker_context_is_only_what_the_image_copies",
        "everything sent to the builder",
        edit_text(".dockerignore", "\n*\n", "\n.venv\n"),
    ),
    (
        "code_owners_review_ci_and_infra",
        "infra unowned",
        edit_text(".github/CODEOWNERS", "/infra/ ", "/docs/ "),
    ),
]
