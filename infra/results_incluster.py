"""PostgreSQL as a single-replica StatefulSet for task results (dev and small installs): a
PVC, generated passwords in a Secret, and a NetworkPolicy admitting only the fleet's pods.

Rights: on the first start (an empty volume) the official image's entrypoint runs initdb with
POSTGRES_USER (`postgres`, the bootstrap superuser, used by nobody else), creates
POSTGRES_DB, and runs the init script of a ConfigMap: it creates the fleet's role (`username`)
with LOGIN only (no superuser, no CREATEDB/CREATEROLE), makes it the database's owner and
takes CONNECT away from PUBLIC. Celery creates its two tables as that role the first time a
worker stores a result; it can touch nothing outside its database. A volume initialised
before this script existed keeps its old role (then the superuser): recreate the PVC."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.labels import FLEET_POD_SELECTOR, app_labels, selector
from infra.podspec import (
    container_security_context,
    empty_dir,
    pod_security_context,
    resources,
    secret_env,
)
from infra.results_config import PostgresResults
from infra.results_names import (
    POSTGRES,
    POSTGRES_INIT,
    POSTGRES_PASSWORD_KEY,
    POSTGRES_PORT,
    POSTGRES_SUPERUSER,
    POSTGRES_SUPERUSER_PASSWORD_KEY,
    postgres_host,
    postgres_url,
)

# The official image's `postgres` user.
POSTGRES_UID = 999
# A subdirectory: initdb refuses a mount point's root (it holds lost+found on many volumes).
PGDATA = "/var/lib/postgresql/data/pgdata"
INITDB_DIR = "/docker-entrypoint-initdb.d"
# Sourced by the entrypoint (bash, the temporary server listening on its socket only).
# Values come from the environment (\getenv): the password is in no argv.
FLEET_ROLE_SCRIPT = r"""psql -v ON_ERROR_STOP=1 --no-password --username "$POSTGRES_USER" \
  --dbname "$POSTGRES_DB" <<'SQL'
\getenv role FLEET_DB_USER
\getenv pw FLEET_DB_PASSWORD
\getenv db POSTGRES_DB
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'role', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER DATABASE :"db" OWNER TO :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
"""


class InClusterPostgres(pulumi.ComponentResource):
    """Outputs: `url` (secret, Celery's form) and `host`."""

    url: pulumi.Output[str]
    host: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: PostgresResults,
        namespace: pulumi.Input[str],
        namespace_name: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:InClusterPostgres", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = app_labels("postgres", POSTGRES, "results")
        password = random.RandomPassword(
            f"{resource_name}-password", length=40, special=False, opts=child
        )
        superuser = random.RandomPassword(
            f"{resource_name}-superuser-password", length=40, special=False, opts=child
        )
        secret = k8s.core.v1.Secret(
            f"{resource_name}-password",
            metadata={"name": POSTGRES, "namespace": namespace, "labels": labels},
            type="Opaque",
            string_data={
                POSTGRES_PASSWORD_KEY: password.result,
                POSTGRES_SUPERUSER_PASSWORD_KEY: superuser.result,
            },
            opts=child,
        )
        init = k8s.core.v1.ConfigMap(
            f"{resource_name}-init",
            metadata={"name": POSTGRES_INIT, "namespace": namespace, "labels": labels},
            data={"10-fleet-role.sh": FLEET_ROLE_SCRIPT},
            opts=child,
        )
        ports: list[k8s.core.v1.ServicePortArgsDict] = [
            {"name": "postgres", "port": POSTGRES_PORT, "target_port": "postgres"}
        ]
        headless = k8s.core.v1.Service(
            f"{resource_name}-headless",
            metadata={"name": f"{POSTGRES}-headless", "namespace": namespace, "labels": labels},
            spec={"cluster_ip": "None", "selector": selector(labels), "ports": ports},
            opts=child,
        )
        k8s.core.v1.Service(
            resource_name,
            metadata={"name": POSTGRES, "namespace": namespace, "labels": labels},
            spec={"type": "ClusterIP", "selector": selector(labels), "ports": ports},
            opts=child,
        )
        run_volume, run_mount = empty_dir("run", "/var/run/postgresql", "16Mi")
        tmp_volume, tmp_mount = empty_dir("tmp", "/tmp", "64Mi")
        ready = ["pg_isready", "-h", "127.0.0.1", "-U", cfg.username, "-d", cfg.database]
        volume_claim: k8s.core.v1.PersistentVolumeClaimSpecArgsDict = {
            "access_modes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": cfg.storage_size}},
        }
        if cfg.storage_class:
            volume_claim["storage_class_name"] = cfg.storage_class
        k8s.apps.v1.StatefulSet(
            resource_name,
            metadata={"name": POSTGRES, "namespace": namespace, "labels": labels},
            spec={
                "service_name": headless.metadata.name,
                "replicas": 1,
                "selector": {"match_labels": selector(labels)},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "security_context": pod_security_context(POSTGRES_UID),
                        # A fast shutdown (SIGTERM) checkpoints; give it time before SIGKILL.
                        "termination_grace_period_seconds": 60,
                        "containers": [
                            {
                                "name": "postgres",
                                "image": cfg.image,
                                "env": [
                                    {"name": "POSTGRES_USER", "value": POSTGRES_SUPERUSER},
                                    {"name": "POSTGRES_DB", "value": cfg.database},
                                    {"name": "PGDATA", "value": PGDATA},
                                    secret_env(
                                        "POSTGRES_PASSWORD",
                                        POSTGRES,
                                        POSTGRES_SUPERUSER_PASSWORD_KEY,
                                    ),
                                    {"name": "FLEET_DB_USER", "value": cfg.username},
                                    secret_env(
                                        "FLEET_DB_PASSWORD", POSTGRES, POSTGRES_PASSWORD_KEY
                                    ),
                                ],
                                "ports": [{"name": "postgres", "container_port": POSTGRES_PORT}],
                                "resources": resources(cfg.resources),
                                "security_context": container_security_context(POSTGRES_UID),
                                "volume_mounts": [
                                    {"name": "data", "mount_path": "/var/lib/postgresql/data"},
                                    run_mount,
                                    tmp_mount,
                                    {"name": "init", "mount_path": INITDB_DIR, "read_only": True},
                                ],
                                "readiness_probe": {
                                    "exec_": {"command": ready},
                                    "period_seconds": 5,
                                    "timeout_seconds": 3,
                                },
                                "liveness_probe": {
                                    "tcp_socket": {"port": "postgres"},
                                    "initial_delay_seconds": 30,
                                    "period_seconds": 10,
                                    "failure_threshold": 6,
                                },
                            }
                        ],
                        "volumes": [
                            run_volume,
                            tmp_volume,
                            {"name": "init", "config_map": {"name": init.metadata.name}},
                        ],
                    },
                },
                "volume_claim_templates": [
                    {"metadata": {"name": "data", "labels": labels}, "spec": volume_claim}
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-ingress",
            metadata={"name": POSTGRES, "namespace": namespace, "labels": labels},
            spec={
                "pod_selector": {"match_labels": selector(labels)},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from_": [{"pod_selector": {"match_labels": FLEET_POD_SELECTOR}}],
                        "ports": [{"protocol": "TCP", "port": POSTGRES_PORT}],
                    }
                ],
            },
            opts=child,
        )
        self.host = pulumi.Output.from_input(postgres_host(namespace_name))
        self.url = pulumi.Output.secret(
            pulumi.Output.all(password.result, self.host).apply(
                lambda parts: postgres_url(cfg.username, parts[0], parts[1], cfg.database)
            )
        )
        self.register_outputs({"host": self.host, "url": self.url})
