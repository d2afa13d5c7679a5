"""The architecture is checked, not only drawn: `lint-imports` (run by `make lint`) holds the
code to the contracts in pyproject.toml, and fails a copy of the tree with one upward import.
Every error the service raises on purpose is a FleetError (what `fleet` catches)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import service
from service.errors import FleetError

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("service", "infra", "dashboards", "policy")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports missing: make setup installs import-linter")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("*.pyc"))
    return tree


def test_the_tree_keeps_its_contracts(tree_copy: Path) -> None:
    result = lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward", "contract"),
    [
        # The DLQ reporting to the worker's metrics directly, instead of through a listener.
        ("service/dlq/keys.py", "service.worker.metrics", "each layer imports only"),
        # The transport importing the DLQ's writer instead of taking it as a callback.
        ("service/transport/quarantine.py", "service.dlq.capture", "each layer imports only"),
        # The catalog importing the runtime.
        ("service/catalog/naming.py", "service.config.settings", "each layer imports only"),
        ("dashboards/promql.py", "infra.config", "dashboards are data the infra ships"),
    ],
)
def test_one_upward_import_breaks_a_contract(
    tree_copy: Path, tmp_path: Path, module: str, upward: str, contract: str
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(tree_copy, tree)
    path = tree / module
    path.write_text(path.read_text() + f"\nimport {upward}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    assert upward in broken  # it names the import that broke it, in this copy


def _service_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(service.__path__, "service.")
        if info.name not in {"service.__main__", "service.app_factory"}
    ]


def test_every_service_error_is_a_fleet_error() -> None:
    strays = []
    for name in _service_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == name
                and issubclass(value, BaseException)
                and not issubclass(value, FleetError)
            ):
                strays.append(f"{name}.{attr}")
    assert strays == []
