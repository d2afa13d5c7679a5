"""The dev stack as `pulumi up` would create it, rendered by the Pulumi program under mocks
(tests/infra/run_stack.py), turned into what `podman kube play` runs.

What a cluster provides and podman cannot is the ONLY change: the Deployment and StatefulSet
controllers become one Pod per replica (a StatefulSet's claim templates become its pod's
PersistentVolumeClaims, named as the controller names them), and Services become hostAliases
to the addresses of the pods they select on the test's network. Everything else in the pod
spec stays as rendered: command/args, env (secretKeyRef), volumes and mounts, security
contexts, resources, probes."""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from infra_harness import run_stack
from infra_manifests import manifests

Manifest = dict[str, Any]


@dataclass
class PodPlan:
    name: str
    owner_kind: str
    owner: str
    labels: dict[str, str]
    spec: Manifest
    ip: str = ""
    claims: list[Manifest] = field(default_factory=list)

    def container_name(self, container: str) -> str:
        """How podman names a Pod's container."""
        return f"{self.name}-{container}"

    def containers(self) -> list[Manifest]:
        return list(self.spec["containers"])

    def volume_names(self) -> list[str]:
        """The podman volumes this pod uses: its claims, its private emptyDirs, and one per
        ConfigMap it mounts (podman 4.3's kube play makes a volume named like the ConfigMap
        and would reuse it, stale, in the next run)."""
        volumes = self.spec.get("volumes", [])
        claims = [c["metadata"]["name"] for c in self.claims]
        scratch = [private_name(self, v["name"]) for v in volumes if "emptyDir" in v]
        config = [v["configMap"]["name"] for v in volumes if "configMap" in v]
        return claims + scratch + config


@dataclass
class RenderedStack:
    namespace: str
    pods: list[PodPlan]
    secrets: dict[str, dict[str, str]]
    config_maps: list[Manifest]
    services: list[Manifest]
    by_kind: dict[str, list[Manifest]]

    def pod(self, name: str) -> PodPlan:
        return next(p for p in self.pods if p.name == name)

    def owned_by(self, owner: str) -> list[PodPlan]:
        return [p for p in self.pods if p.owner == owner]


def render(stack: str = "dev", *extra: str) -> dict[str, Any]:
    proc = run_stack(stack, *extra)
    assert proc.returncode == 0, f"rendering {stack} failed:\n{proc.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def load(result: dict[str, Any]) -> RenderedStack:
    objects = manifests(result["resources"])
    by_kind: dict[str, list[Manifest]] = {}
    for m in objects:
        by_kind.setdefault(m["kind"], []).append(m)
    namespaces = {m["metadata"].get("namespace") for m in objects} - {None}
    assert len(namespaces) >= 1
    pods: list[PodPlan] = []
    for kind in ("StatefulSet", "Deployment"):  # the broker first: everything needs it
        for workload in by_kind.get(kind, []):
            pods += controller_pods(kind, workload)
    secrets = {s["metadata"]["name"]: secret_data(s) for s in by_kind.get("Secret", [])}
    app_ns = by_kind["Deployment"][0]["metadata"]["namespace"]
    return RenderedStack(
        app_ns, pods, secrets, by_kind.get("ConfigMap", []), by_kind.get("Service", []), by_kind
    )


def controller_pods(kind: str, workload: Manifest) -> list[PodPlan]:
    """The pods a Deployment/StatefulSet controller would create from the template."""
    name = workload["metadata"]["name"]
    spec = workload["spec"]
    template = spec["template"]
    pods = []
    for index in range(int(spec.get("replicas", 1))):
        pod_spec = copy.deepcopy(template["spec"])
        pod_name = f"{name}-{index}"
        claims = []
        if kind == "StatefulSet":
            for claim in spec.get("volumeClaimTemplates", []):
                claim_name = f"{claim['metadata']['name']}-{pod_name}"
                claims.append(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim_name},
                        "spec": claim["spec"],
                    }
                )
                pod_spec.setdefault("volumes", []).append(
                    {
                        "name": claim["metadata"]["name"],
                        "persistentVolumeClaim": {"claimName": claim_name},
                    }
                )
        labels = dict(template["metadata"].get("labels", {}))
        pods.append(PodPlan(pod_name, kind, name, labels, pod_spec, claims=claims))
    return pods


def secret_data(secret: Manifest) -> dict[str, str]:
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    data.update(secret.get("stringData", {}))
    return data


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def assign_addresses(stack: RenderedStack, addresses: list[str]) -> None:
    """Fixed pod IPs, so Service names can point at them before the pods exist."""
    assert len(addresses) >= len(stack.pods)
    for pod, ip in zip(stack.pods, addresses, strict=False):
        pod.ip = ip
    aliases: dict[str, set[str]] = {}
    for service in stack.services:
        meta, spec = service["metadata"], service["spec"]
        ns = meta.get("namespace", stack.namespace)
        chosen = [p for p in stack.pods if selects(spec.get("selector", {}), p.labels)]
        dns = [meta["name"], f"{meta['name']}.{ns}", f"{meta['name']}.{ns}.svc"]
        dns.append(f"{meta['name']}.{ns}.svc.cluster.local")
        for pod in chosen[:1]:  # one replica each in dev; a ClusterIP picks one pod
            for host in dns:
                aliases.setdefault(pod.ip, set()).add(host)
        if spec.get("clusterIP") == "None":  # headless: per-pod names too
            for pod in chosen:
                for host in dns:
                    aliases.setdefault(pod.ip, set()).add(f"{pod.name}.{host}")
    host_aliases = [{"ip": ip, "hostnames": sorted(names)} for ip, names in sorted(aliases.items())]
    for pod in stack.pods:
        pod.spec["hostAliases"] = [*pod.spec.get("hostAliases", []), *host_aliases]


def expand_env_references(spec: Manifest, secrets: dict[str, dict[str, str]]) -> Manifest:
    """The kubelet expands `$(VAR)` in command and args from the container's env (literal or
    secretKeyRef); podman 4.3 does not, so the test does it as the kubelet would."""
    spec = copy.deepcopy(spec)
    for container in spec["containers"]:
        values: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                values[item["name"]] = str(item["value"])
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] in secrets.get(ref["name"], {}):
                values[item["name"]] = secrets[ref["name"]][ref["key"]]

        def expand(text: str, values: dict[str, str] = values) -> str:
            return re.sub(
                r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: "$" if m.group(0) == "$$" else values.get(m.group(1), m.group(0)),
                text,
            )

        for key in ("command", "args"):
            if key in container:
                container[key] = [expand(a) for a in container[key]]
    return spec


def private_name(pod: PodPlan, volume: str) -> str:
    return f"{pod.name}-{volume}"


def private_empty_dirs(spec: Manifest, pod: PodPlan) -> Manifest:
    """podman 4.3's kube play turns an emptyDir into a NAMED volume called like the pod's
    volume, shared by every pod that has one of that name (seven worker pods would share one
    metrics dir and one heartbeat file). A kubelet gives each pod its own: rename them per pod
    (in volumes and mounts alike); nothing else about them changes."""
    spec = copy.deepcopy(spec)
    renamed = {}
    for volume in spec.get("volumes", []):
        if "emptyDir" in volume:
            renamed[volume["name"]] = volume["name"] = private_name(pod, volume["name"])
    for container in spec["containers"]:
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])
    return spec


def without_container_ports(spec: Manifest) -> Manifest:
    """podman 4.3's kube play publishes every containerPort on the HOST (a kubelet never
    does; there they only name ports), which would leave the test's network and collide
    between pods. The test resolves named ports from the rendered spec itself."""
    spec = copy.deepcopy(spec)
    for container in spec["containers"]:
        container.pop("ports", None)
    return spec


def kube_yaml(stack: RenderedStack, pod: PodPlan) -> str:
    """One pod's document set for `podman kube play`."""
    docs: list[Manifest] = [*pod.claims]
    docs += [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": c["metadata"]["name"]},
         "data": c.get("data", {})}
        for c in stack.config_maps
    ]  # fmt: skip
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.name, "labels": pod.labels},
            "spec": without_container_ports(
                private_empty_dirs(expand_env_references(pod.spec, stack.secrets), pod)
            ),
        }
    )
    return yaml.safe_dump_all(docs, sort_keys=False)
