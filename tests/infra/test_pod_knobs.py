"""Placement and annotations a platform team sets in Pulumi.<stack>.yaml: `pods` for every
fleet pod, `queues.<name>.pods` over it for one pool, `serviceAccount.annotations`, Flower's
Ingress annotations. Validated by the stack model (errors name the key) and rendered into
objects the Kubernetes API schema accepts."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from infra_harness import run_stack
from infra_manifests import by_name, manifests, pod_spec

from infra.config import parse_config
from infra.config_reader import InfraConfigError
from infra.podspec import SECRETS_CHECKSUM_ANNOTATION

PODS: dict[str, Any] = {
    "nodeSelector": {"kubernetes.io/os": "linux", "workload": "celery"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "celery", "effect": "NoSchedule"}
    ],
    "priorityClassName": "fleet-normal",
    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {
                        "matchExpressions": [
                            {"key": "node.kubernetes.io/lifecycle", "operator": "In",
                             "values": ["on-demand"]}
                        ]
                    },
                }
            ]
        }
    },
}  # fmt: skip
EMAIL: dict[str, Any] = {
    "pods": {
        "nodeSelector": {"workload": "email"},
        "priorityClassName": "fleet-high",
        "topologySpread": "DoNotSchedule",
        "tolerations": [{"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}],
    }
}
IRSA = {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/fleet"}}


@pytest.fixture(scope="module")
def knobs() -> dict[str, Any]:
    proc = run_stack(
        "prod",
        "--set",
        f"pods={json.dumps(PODS)}",
        "--set",
        f"queues={json.dumps({'email': {**EMAIL, 'minReplicas': 0, 'maxReplicas': 20}})}",
        "--set",
        f"serviceAccount={json.dumps(IRSA)}",
        "--set",
        'flower={"ingressHost": "flower.example.com", "tlsSecretName": "flower-tls", '
        '"ingressAnnotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}}',
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_every_fleet_pod_gets_the_stacks_placement(knobs: dict[str, Any]) -> None:
    for name, d in by_name(knobs["resources"], "Deployment").items():
        if name == "celery-worker-email":
            continue
        spec = pod_spec(d)
        assert spec["nodeSelector"] == PODS["nodeSelector"], name
        assert spec["tolerations"] == PODS["tolerations"], name
        assert spec["priorityClassName"] == "fleet-normal", name
        assert spec["affinity"]["nodeAffinity"] == PODS["affinity"]["nodeAffinity"], name
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true", name
        assert SECRETS_CHECKSUM_ANNOTATION in annotations, name
        if name.startswith("celery-worker-"):
            (spread,) = spec["topologySpreadConstraints"]
            assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    # beat keeps its own anti-affinity beside the stack's node affinity
    beat = pod_spec(by_name(knobs["resources"], "Deployment")["celery-beat"])
    assert "podAntiAffinity" in beat["affinity"]


def test_a_pool_overrides_the_stack_key_by_key(knobs: dict[str, Any]) -> None:
    email = by_name(knobs["resources"], "Deployment")["celery-worker-email"]
    spec = pod_spec(email)
    # maps merge, the rest is replaced
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "workload": "email"}
    assert spec["priorityClassName"] == "fleet-high"
    assert spec["tolerations"] == EMAIL["pods"]["tolerations"]
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"


def test_service_account_and_ingress_annotations(knobs: dict[str, Any]) -> None:
    sa = by_name(knobs["resources"], "ServiceAccount")["celery-fleet"]
    assert sa["metadata"]["annotations"] == IRSA["annotations"]
    (ingress,) = manifests(knobs["resources"], "Ingress")
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}


@pytest.mark.parametrize("version", ["1.30", "1.34"])
def test_the_knobs_render_valid_objects(knobs: dict[str, Any], version: str) -> None:
    for m in manifests(knobs["resources"]):
        if m["kind"] in ("Deployment", "ServiceAccount", "Ingress", "Job"):
            kubernetes_validate.validate(m, version, strict=True)


BASE: dict[str, Any] = {
    "image": "registry.example/celery-fleet:1",
    "redis": {"mode": "in-cluster"},
    "autoscaler": {"mode": "hpa", "prometheusUrl": "http://prometheus:9090"},
}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"pods": {"nodeSelecter": {}}}, "pods.nodeSelecter"),
        ({"pods": {"nodeSelector": {"bad key!": "x"}}}, "pods.nodeSelector"),
        ({"pods": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
         "pods.tolerations.0.value"),
        ({"pods": {"tolerations": [{"operator": "Equal"}]}}, "pods.tolerations.0.operator"),
        ({"pods": {"tolerations": [{"key": "k", "effect": "NoSchedule",
                                    "tolerationSeconds": 5}]}},
         "pods.tolerations.0.tolerationSeconds"),
        ({"pods": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}},
         "pods.tolerations.0.effect"),
        ({"pods": {"affinity": {"nodeAfinity": {}}}}, "pods.affinity.nodeAfinity"),
        ({"pods": {"priorityClassName": "High_Priority"}}, "pods.priorityClassName"),
        ({"pods": {"topologySpread": "Always"}}, "pods.topologySpread"),
        ({"pods": {"annotations": {"celery-fleet/secrets-checksum": "x"}}}, "pods.annotations"),
        ({"queues": {"email": {"pods": {"priorityClass": "x"}}}},
         "queues.email.pods.priorityClass"),
        ({"serviceAccount": {"annotation": {}}}, "serviceAccount.annotation"),
        ({"flower": {"ingressAnnotations": {"no spaces": "x"}}}, "flower.ingressAnnotations"),
    ],
)  # fmt: skip
def test_bad_knobs_name_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(InfraConfigError, match=f"celery-fleet:{key}".replace(".", r"\.")):
        parse_config({**BASE, **changes}, "dev")
