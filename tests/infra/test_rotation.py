"""Credential rotation, on the rendered diff under mocks: changing `redis.authTokenRotation`
makes a new AUTH token that ElastiCache applies with ROTATE (old and new accepted while the
pods roll), updates the broker Secret in place, and rolls every pod that reads it through
its checksum annotation; nothing else changes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from infra_harness import ROOT, run_stack, stack_result
from infra_manifests import clean, manifests

from infra.names import BROKER_SECRET
from infra.podspec import SECRETS_CHECKSUM_ANNOTATION

RG = "aws:elasticache/replicationGroup:ReplicationGroup"
PASSWORD = "random:index/randomPassword:RandomPassword"
READERS = {"celery-beat", "celery-exporter", "celery-flower"}


def prod_redis() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    return dict(doc["config"]["celery-fleet:redis"])


def rotated(value: str = "2027-01") -> dict[str, Any]:
    redis = {**prod_redis(), "authTokenRotation": value}
    proc = run_stack("prod", "--set", f"redis={json.dumps(redis)}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def of(result: dict[str, Any], typ: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in result["resources"] if r["type"] == typ and r["name"] == name]
    return dict(clean(found["inputs"]))


def template_annotations(result: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"].get("annotations", {})
        for d in manifests(result["resources"], "Deployment")
    }


def test_a_new_rotation_value_rotates_the_token_in_place() -> None:
    before, after = stack_result("prod"), rotated()
    # Then the token is a new password (its keeper changed)...
    old_pw, new_pw = (
        of(before, PASSWORD, "redis-auth-token"),
        of(after, PASSWORD, "redis-auth-token"),
    )
    assert old_pw["keepers"] != new_pw["keepers"]
    assert {k: v for k, v in old_pw.items() if k != "keepers"} == {
        k: v for k, v in new_pw.items() if k != "keepers"
    }
    # ...the replication group changes only its token, applied with ROTATE (both valid)
    old_rg, new_rg = of(before, RG, "redis-rg"), of(after, RG, "redis-rg")
    assert old_rg["authToken"] != new_rg["authToken"]
    assert new_rg["authTokenUpdateStrategy"] == "ROTATE"
    assert {k for k in old_rg if old_rg[k] != new_rg.get(k)} == {"authToken"}


def test_the_secret_changes_in_place_and_every_reader_rolls() -> None:
    before, after = stack_result("prod"), rotated()
    # The broker Secret keeps its name (the same object) with the new URL in it
    old_s, new_s = (
        of(before, "kubernetes:core/v1:Secret", "app-broker"),
        of(after, "kubernetes:core/v1:Secret", "app-broker"),
    )
    assert old_s["metadata"] == new_s["metadata"] and old_s["metadata"]["name"] == BROKER_SECRET
    assert old_s["stringData"] != new_s["stringData"]
    assert "immutable" not in new_s
    # Every Deployment whose pods read it gets a new checksum, and nothing else changes
    old_a, new_a = template_annotations(before), template_annotations(after)
    readers = {n for n in new_a if n.startswith("celery-worker-")} | READERS
    assert readers <= set(new_a)
    for name in readers:
        assert old_a[name][SECRETS_CHECKSUM_ANNOTATION] != new_a[name][SECRETS_CHECKSUM_ANNOTATION]
    deployments = {d["metadata"]["name"]: d for d in manifests(before["resources"], "Deployment")}
    for d in manifests(after["resources"], "Deployment"):
        old = json.loads(json.dumps(deployments[d["metadata"]["name"]]))
        old["spec"]["template"]["metadata"].pop("annotations", None)
        d["spec"]["template"]["metadata"].pop("annotations", None)
        assert old == d, d["metadata"]["name"]


def test_the_checksum_is_not_secret_and_not_the_token() -> None:
    result = stack_result("prod")
    (worker, *_) = [
        r for r in result["resources"]
        if r["type"] == "kubernetes:apps/v1:Deployment" and r["name"] == "default"
    ]  # fmt: skip
    annotations = worker["inputs"]["spec"]["template"]["metadata"]["annotations"]
    value = annotations[SECRETS_CHECKSUM_ANNOTATION]
    # Plain (so the preview shows the roll), and revealing nothing of the URL
    assert isinstance(value, str) and len(value) == 32
    assert "mockpw" not in json.dumps(annotations)


def test_the_program_refuses_providers_that_would_replace_secrets() -> None:
    # Without the provider's enableSecretMutable a changed Secret is deleted, then created
    proc = run_stack("prod", "--unset", "kubernetes:enableSecretMutable")
    assert proc.returncode != 0
    assert "kubernetes:enableSecretMutable must be true" in proc.stderr


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_update_secrets_in_place(stack: str) -> None:
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    assert str(doc["config"]["kubernetes:enableSecretMutable"]).lower() == "true"
