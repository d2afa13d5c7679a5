"""The pack's policies, built from `checks.CHECKS` (kept apart from __main__, which serves)."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policy.checks import CHECKS, Check
from policy.prod import CONTEXT_CHECKS, Context, ContextCheck

PACK_NAME = "celery-fleet"


def _adapt(check: Check) -> ResourceValidation:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


def _adapt_context(check: ContextCheck) -> ResourceValidation:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        protect = bool(getattr(args.opts, "protect", False))
        context = Context.from_urn(args.urn, protect=protect)
        for message in check(args.resource_type, args.props, context):
            report_violation(message, None)

    return validate


def policies() -> list[Policy]:
    plain = [
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=_adapt(check),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for name, (description, check) in CHECKS.items()
    ]
    production = [
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=_adapt_context(check),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for name, (description, check) in CONTEXT_CHECKS.items()
    ]
    return [*plain, *production]
