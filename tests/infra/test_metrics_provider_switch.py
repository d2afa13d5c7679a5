"""Switching `autoscaler.mode` (hpa <-> keda) in ONE `pulumi up`, on the rendered objects.

prometheus-adapter and KEDA both own the cluster-wide APIService
`v1beta1.external.metrics.k8s.io`; Helm refuses to install an object another release owns.
KEDA's ScaledObjects carry a finalizer only the running KEDA operator removes, and KEDA's
webhook refuses a ScaledObject whose target an HPA of someone else scales.

Under mocks the engine cannot run, so these tests replay what it would do with the two
renders (before, after): which resources are the SAME resource (URN, aliases), which change
replaces them (pulumi-kubernetes' own force-new fields, plus `replaceOnChanges`), in which
order (`deleteBeforeReplace`; registrations wait for their `dependsOn`; resources dropped
from the program are deleted at the end), and check the cluster at every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from infra_harness import dev_in_mode
from infra_manifests import clean

from infra.autoscaler import HPA_TYPE, SCALED_OBJECT_TYPE

RELEASE = "kubernetes:helm.sh/v3:Release"
PROVIDER = "celery-fleet:k8s:ExternalMetricsProvider"
POOL = "celery-fleet:k8s:WorkerPool"
JOB = "kubernetes:batch/v1:Job"
CHART = {"hpa": "prometheus-adapter", "keda": "keda"}
# pulumi-kubernetes provider/pkg/provider/helm_release.go, Diff: forceNewFields.
RELEASE_FORCE_NEW = ("name", "namespace")


def one(result: dict[str, Any], typ: str) -> dict[str, Any]:
    (found,) = [r for r in result["resources"] if r["type"] == typ]
    return dict(found)


def options(result: dict[str, Any], typ: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in result["options"] if o["type"] == typ and o["name"] == name]
    return dict(found)


def release_urn(result: dict[str, Any]) -> str:
    (urn,) = [u for u in result["urns"] if u.split("::")[-2].endswith(f"${RELEASE}")]
    return str(urn)


@dataclass(frozen=True)
class Step:
    op: str  # "delete" or "create"
    what: str  # "release:<chart>" or "<kind>:<deployment>"


def release_replaced(before: dict[str, Any], after: dict[str, Any]) -> bool:
    old, new = clean(one(before, RELEASE)["inputs"]), clean(one(after, RELEASE)["inputs"])
    opts = options(after, RELEASE, one(after, RELEASE)["name"])
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    return bool(changed & ({*RELEASE_FORCE_NEW} | set(opts["replaceOnChanges"])))


def engine_steps(before: dict[str, Any], after: dict[str, Any], old: str, new: str) -> list[Step]:
    """The provider and autoscaler steps of `pulumi up` from `before` to `after`, in order:
    each registration's steps as it registers (the mocks record registrations in the order
    the SDK sends them, each after its dependencies completed)."""
    steps: list[Step] = []
    release_opts = options(after, RELEASE, one(after, RELEASE)["name"])
    new_kind = {"hpa": HPA_TYPE, "keda": SCALED_OBJECT_TYPE}[new]
    old_kind = {"hpa": HPA_TYPE, "keda": SCALED_OBJECT_TYPE}[old]
    for r in after["resources"]:
        if r["type"] == RELEASE:
            assert release_replaced(before, after), "a chart switch must replace the release"
            delete, create = (
                Step("delete", f"release:{CHART[old]}"),
                Step("create", f"release:{CHART[new]}"),
            )
            # Without deleteBeforeReplace the engine creates the replacement first.
            steps += [delete, create] if release_opts["deleteBeforeReplace"] else [create, delete]
        elif r["type"] == new_kind:
            target = clean(r["inputs"])["spec"]["scaleTargetRef"]["name"]
            opts = options(after, new_kind, r["name"])
            assert old_kind in opts["aliasTypes"]  # the same resource as the old autoscaler
            delete = Step("delete", f"{old_kind.rsplit(':', 1)[1]}:{target}")
            create = Step("create", f"{new_kind.rsplit(':', 1)[1]}:{target}")
            steps += [delete, create] if opts["deleteBeforeReplace"] else [create, delete]
    return steps


def check_cluster(steps: list[Step], old: str) -> None:
    """Replay the steps against a model of the cluster and fail at the first step the real
    one would refuse (or leave stuck)."""
    releases = {CHART[old]}
    autoscalers: dict[str, str] = {}  # deployment -> kind
    for step in steps:
        kind, _, name = step.what.partition(":")
        if kind == "release":
            if step.op == "create":
                # Helm: the APIService belongs to the other release
                assert not releases, f"{name} installed while {releases} still owns the APIService"
                releases.add(name)
            else:
                releases.discard(name)
            continue
        if step.op == "delete":
            if kind == "ScaledObject":
                assert "keda" in releases, f"{step}: no KEDA left to remove its finalizer"
            assert autoscalers.pop(name, kind) == kind
        else:
            if kind == "ScaledObject":
                assert "keda" in releases, f"{step}: KEDA's CRD is not installed"
            assert name not in autoscalers, f"{step}: {autoscalers[name]} still targets {name}"
            autoscalers[name] = kind
    assert releases == {CHART["keda" if old == "hpa" else "hpa"]}


@pytest.mark.parametrize(("old", "new"), [("hpa", "keda"), ("keda", "hpa")])
def test_one_release_resource_replaced_delete_first(old: str, new: str) -> None:
    before, after = dev_in_mode(old), dev_in_mode(new)
    # Given the release of each mode, Then it is the same Pulumi resource (same URN)...
    assert release_urn(before) == release_urn(after)
    assert one(before, RELEASE)["inputs"]["chart"] == CHART[old]
    assert one(after, RELEASE)["inputs"]["chart"] == CHART[new]
    # ...whose switch is a replacement (pulumi-kubernetes forces one on name/namespace; the
    # chart is added) that deletes the old release before creating the new one
    assert release_replaced(before, after)
    opts = options(after, RELEASE, one(after, RELEASE)["name"])
    assert opts["deleteBeforeReplace"] is True
    assert {"chart", "name", "namespace"} <= set(opts["replaceOnChanges"])
    # And only one release exists in either render
    assert len([r for r in after["resources"] if r["type"] == RELEASE]) == 1


@pytest.mark.parametrize(("old", "new"), [("hpa", "keda"), ("keda", "hpa")])
def test_the_switch_never_has_two_providers_nor_strands_a_scaled_object(old: str, new: str) -> None:
    before, after = dev_in_mode(old), dev_in_mode(new)
    steps = engine_steps(before, after, old, new)
    assert len([s for s in steps if s.what.startswith("release:")]) == 2
    check_cluster(steps, old)


def test_the_order_comes_from_dependencies_not_from_chance() -> None:
    # KEDA mode: every worker pool waits for the provider (ScaledObjects need its CRDs)
    keda = dev_in_mode("keda")
    for o in keda["options"]:
        if o["type"] == POOL:
            assert f"{PROVIDER}::metrics-provider" in o["dependsOn"], o["name"]
    # HPA mode: the provider waits for every pool (the ScaledObjects go while KEDA runs)
    hpa = dev_in_mode("hpa")
    pools = {f"{POOL}::{o['name']}" for o in hpa["options"] if o["type"] == POOL}
    assert pools and pools <= set(options(hpa, PROVIDER, "metrics-provider")["dependsOn"])
    for o in hpa["options"]:
        if o["type"] == POOL:
            assert not any(d.startswith(PROVIDER) for d in o["dependsOn"]), o["name"]


def test_the_model_catches_the_old_create_before_delete() -> None:
    # Given the release as it was (no deleteBeforeReplace), the replay refuses the switch
    steps = [Step("create", "release:keda"), Step("delete", "release:prometheus-adapter")]
    with pytest.raises(AssertionError, match="owns the APIService"):
        check_cluster(steps, "hpa")
    # And ScaledObjects deleted after KEDA's uninstall would hang on their finalizer
    stuck = [
        Step("delete", "release:keda"),
        Step("delete", "ScaledObject:celery-worker-default"),
    ]
    with pytest.raises(AssertionError, match="finalizer"):
        check_cluster(stuck, "keda")
