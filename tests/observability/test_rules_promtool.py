"""promtool on the rule files (what `make rules` runs) and on every dashboard expression."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from dashboards.expressions import all_panel_expressions
from dashboards.promql import kube_by_queue
from service.catalog.naming import worker_deployment_name
from service.catalog.queues import CATALOG

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules(promtool: str) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "alerts").glob("*.yaml"))
    result = run(promtool, "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool: str) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "alerts" / "tests").glob("*.yaml"))
    assert files
    result = run(promtool, "test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_expressions_parse(promtool: str, tmp_path: Path) -> None:
    # Given every panel query as a recording rule, then Prometheus' own parser accepts it.
    rules = [
        {"record": f"dashboard:expr_{index}", "expr": expr}
        for index, (_, expr, _) in enumerate(all_panel_expressions())
    ]
    path = tmp_path / "dashboard-expressions.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kube_series_map_back_to_every_catalog_queue(promtool: str, tmp_path: Path) -> None:
    # Given one HPA series per catalog queue, named as infra names them (service.catalog.naming),
    # plus an unrelated HPA, then the dashboards' label_replace chain recovers each queue name.
    hpas = {queue: worker_deployment_name(queue) for queue in CATALOG.names}
    metric = "kube_horizontalpodautoscaler_spec_max_replicas"
    series = [
        {"series": f'{metric}{{namespace="c",horizontalpodautoscaler="{hpa}"}}', "values": "4x5"}
        for hpa in hpas.values()
    ]
    # KEDA mode: the HPA is KEDA's, named after the ScaledObject (another namespace, a higher
    # value: `max by (queue)` shows 7 only if these series are matched and mapped too).
    series += [
        {
            "series": f'{metric}{{namespace="k",horizontalpodautoscaler="keda-hpa-{hpa}"}}',
            "values": "7x5",
        }
        for hpa in hpas.values()
    ]
    series.append(
        {"series": f'{metric}{{namespace="c",horizontalpodautoscaler="frontend"}}', "values": "4x5"}
    )
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    test_file = tmp_path / "kube-by-queue.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": ["empty.yaml"],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "promql_expr_test": [
                            {
                                "expr": kube_by_queue(metric, "horizontalpodautoscaler"),
                                "eval_time": "2m",
                                "exp_samples": [
                                    {"labels": f'{{queue="{queue}"}}', "value": 7} for queue in hpas
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
