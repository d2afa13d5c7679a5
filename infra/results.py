"""The result store a stack's `results.mode` asks for, and the Secret every fleet pod reads
CELERY_RESULT_BACKEND from. `redis` creates nothing: the pods fall back to the broker URL."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.labels import app_labels
from infra.names import PART_OF
from infra.results_config import PostgresResults, ResultsConfig
from infra.results_incluster import InClusterPostgres
from infra.results_names import RESULTS_SECRET, RESULTS_URL_KEY
from infra.results_postgres import RdsPostgres


class ResultStore(pulumi.ComponentResource):
    """The database and the Secret holding its URL. Outputs: `host` (None unless postgres)."""

    host: pulumi.Output[str] | None

    def __init__(
        self,
        resource_name: str,
        results: ResultsConfig,
        redis_cfg: Any,
        stack: str,
        namespace: pulumi.Input[str],
        namespace_name: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:results:ResultStore", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.host = None
        if not isinstance(results, PostgresResults):
            self.register_outputs({})
            return
        database: InClusterPostgres | RdsPostgres
        if results.provider == "rds":
            database = RdsPostgres(f"{resource_name}-rds", results, redis_cfg, stack, opts=child)
        else:
            database = InClusterPostgres(
                f"{resource_name}-postgres", results, namespace, namespace_name, opts=child
            )
        k8s.core.v1.Secret(
            f"{resource_name}-url",
            metadata={
                "name": RESULTS_SECRET,
                "namespace": namespace,
                "labels": app_labels(PART_OF, stack, "secrets"),
            },
            type="Opaque",
            string_data={RESULTS_URL_KEY: database.url},
            opts=child,
        )
        self.host = database.host
        self.register_outputs({"host": self.host})
