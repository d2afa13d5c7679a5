"""KEDA fails safe: a missing or stale `celery_queue_length` never scales a pool down, as in
HPA mode. Proven on the rendered ScaledObjects against KEDA's own CRD (the chart version the
stack installs, vendored in tests/infra/crds/) with nothing the API server would prune, and
against what KEDA does with those fields (kedacore/keda, v2.17):

- pkg/scalers/prometheus_scaler.go: an empty result is 0 unless `ignoreNullValues` is
  false, then an error ("target may be lost");
- pkg/scaling/executor/scale_scaledobjects.go: an erroring, inactive trigger with a
  fallback of replicas > 0 never scales the target to zero;
- pkg/fallback/fallback.go: after `failureThreshold` errors, `currentReplicasIfHigher`
  feeds the HPA max(current replicas, fallback replicas): never fewer than now."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from infra_harness import dev_in_mode, stack_result
from infra_manifests import manifests

from infra.autoscaler import FALLBACK_FAILURE_THRESHOLD
from infra.metrics_provider import KEDA_CHART

CRD = Path(__file__).with_name("crds") / "keda.sh_scaledobjects.yaml"


def crd_schema() -> dict[str, Any]:
    doc = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in doc["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema as the API server applies it, as JSON Schema: unknown fields of a
    structural schema are PRUNED (silently dropped), so here they are errors."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: closed(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = closed(value)
        elif not key.startswith("x-kubernetes-"):
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and "additionalProperties" not in schema and not preserve:
        out["additionalProperties"] = False
    return out


def crd_errors(manifest: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    validator = jsonschema.Draft7Validator(closed(schema or crd_schema()))
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(manifest)]


def test_the_vendored_crd_is_the_installed_charts() -> None:
    assert f"v{KEDA_CHART[1]}" in CRD.read_text().splitlines()[0]


@pytest.mark.parametrize("mode_stack", ["prod", "dev-keda"])
def test_scaled_objects_validate_against_kedas_crd_with_nothing_pruned(mode_stack: str) -> None:
    result = stack_result("prod") if mode_stack == "prod" else dev_in_mode("keda")
    scaled = manifests(result["resources"], "ScaledObject")
    assert scaled
    for so in scaled:
        assert crd_errors(so) == [], so["metadata"]["name"]


def test_the_check_sees_what_an_older_crd_would_prune() -> None:
    # Given KEDA's CRD before 2.17 (no fallback.behavior), the rendered fallback would lose
    # its behavior, and KEDA would use the default `static`: scale to `replicas` (down!)
    old = copy.deepcopy(crd_schema())
    del old["properties"]["spec"]["properties"]["fallback"]["properties"]["behavior"]
    (so, *_) = manifests(stack_result("prod")["resources"], "ScaledObject")
    errors = crd_errors(so, old)
    assert errors and "behavior" in errors[0]


@pytest.mark.parametrize("stack", ["prod"])
def test_a_missing_metric_is_an_error_that_never_scales_down(stack: str) -> None:
    for so in manifests(stack_result(stack)["resources"], "ScaledObject"):
        spec = so["spec"]
        (trigger,) = spec["triggers"]
        # An empty Prometheus result is an error, not a queue of length 0
        assert trigger["metadata"]["ignoreNullValues"] == "false"
        assert spec["triggers"][0]["metricType"] == "AverageValue"  # fallback needs it
        # And the fallback holds the pool at max(current, replicas) once reads keep failing
        fallback = spec["fallback"]
        assert fallback["behavior"] == "currentReplicasIfHigher"
        assert fallback["failureThreshold"] == FALLBACK_FAILURE_THRESHOLD
        # replicas > 0: KEDA treats a zero fallback as none and scales an idle pool to zero
        assert fallback["replicas"] >= max(spec["minReplicaCount"], 1)
