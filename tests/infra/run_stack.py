"""Run infra/__main__.py under Pulumi mocks for one stack, in THIS process, and print JSON:
every registered resource (type, name, inputs) and every stack export (value, secret).

Usage: python tests/infra/run_stack.py dev|prod [--set key=json]... [--unset key]...
Config comes from Pulumi.<stack>.yaml itself; --set/--unset model a bad edit of it."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "celery-fleet"
ENDPOINT = "master.celery-fleet.abc123.euw1.cache.amazonaws.com"
CONFIG_ENDPOINT = "clustercfg.celery-fleet.abc123.euw1.cache.amazonaws.com"
SERVERLESS_ENDPOINT = "celery-fleet-prod-abc123.serverless.euw1.cache.amazonaws.com"
RDS_ENDPOINT = "results-db.abc123.eu-west-1.rds.amazonaws.com"


class Recorder(pulumi.runtime.Mocks):
    """Echo inputs back as state, plus the computed outputs the program reads."""

    def __init__(self) -> None:
        self.resources: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            # A new keeper is a new password, as with the real provider.
            keepers = json.dumps(args.inputs.get("keepers") or {}, sort_keys=True)
            digest = hashlib.sha256(keepers.encode()).hexdigest()[:8] if keepers != "{}" else ""
            state["result"] = f"mockpw{args.name.replace('-', '')}{digest}"
        elif args.typ == "aws:elasticache/replicationGroup:ReplicationGroup":
            state["primaryEndpointAddress"] = ENDPOINT
            state["configurationEndpointAddress"] = CONFIG_ENDPOINT
        elif args.typ == "aws:elasticache/serverlessCache:ServerlessCache":
            state["endpoints"] = [{"address": SERVERLESS_ENDPOINT, "port": 6379}]
        elif args.typ == "aws:rds/instance:Instance":
            state["address"] = RDS_ENDPOINT
            state.setdefault("identifier", args.name)
        elif args.typ.startswith("aws:") and "name" not in state:
            state["name"] = args.name
        self.resources.append({"type": args.typ, "name": args.name, "inputs": args.inputs})
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def stack_config(stack: str) -> tuple[dict[str, str], list[str]]:
    """The engine's view of Pulumi.<stack>.yaml: objects as JSON strings, `secure:` as secret."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = "mock-secret-value"
            secret_keys.append(key)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys


def _names(depends_on: Any) -> set[str]:
    if depends_on is None:
        return set()
    items = depends_on if isinstance(depends_on, list | tuple) else [depends_on]
    return {f"{getattr(r, '_type', '?')}::{getattr(r, '_name', r)}" for r in items}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("stack")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--unset", action="append", default=[], metavar="KEY")
    parser.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE")
    ns = parser.parse_args(argv)

    config, secret_keys = stack_config(ns.stack)
    for item in ns.set:
        key, _, raw = item.partition("=")
        value = json.loads(raw)
        config[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    for key in ns.unset:  # a bare key is the project's; `kubernetes:x` is taken as written
        config.pop(key if ":" in key else f"{PROJECT}:{key}", None)
    for item in ns.secret:
        key, _, value = item.partition("=")
        config[f"{PROJECT}:{key}"] = value
        secret_keys.append(f"{PROJECT}:{key}")

    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=ns.stack, preview=False)
    pulumi.runtime.set_all_config(config, secret_keys)

    exports: dict[str, Any] = {}
    real_export = pulumi.export

    def export(name: str, value: Any) -> None:
        exports[name] = value
        real_export(name, value)

    pulumi.export = export

    async def collect() -> dict[str, Any]:
        result = {}
        for name, value in exports.items():
            out = pulumi.Output.from_input(value)
            result[name] = {"value": await out.future(), "secret": await out.is_secret()}
        return result

    resolved: dict[str, Any] = {}
    options: list[dict[str, Any]] = []

    def record_options(args: pulumi.ResourceTransformationArgs) -> None:
        """Keep the options the engine would act on (mocks never see them)."""
        opts = args.opts
        options.append(
            {
                "type": args.type_,
                "name": args.name,
                "aliasTypes": [a.type_ for a in opts.aliases or [] if isinstance(a, pulumi.Alias)],
                "deleteBeforeReplace": bool(opts.delete_before_replace),
                "replaceOnChanges": list(opts.replace_on_changes or []),
                "protect": bool(opts.protect),
                "ignoreChanges": list(opts.ignore_changes or []),
                # Direct dependencies by resource name (a component stands for its children).
                "dependsOn": sorted(_names(opts.depends_on)),
                "parent": getattr(opts.parent, "_name", None),
            }
        )

    pulumi.runtime.register_stack_transformation(record_options)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[None]:
        runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__")
        task: asyncio.Task[dict[str, Any]] = asyncio.ensure_future(collect())
        done: pulumi.Output[dict[str, Any]] = pulumi.Output.from_input(task)
        return done.apply(resolved.update)

    program()
    # The mock monitor keys registrations by URN; a URN's type chain names every ancestor.
    monitor = pulumi.runtime.settings.get_monitor()
    urns = sorted(getattr(monitor, "resources", {}))
    result = {
        "resources": recorder.resources,
        "exports": resolved,
        "urns": urns,
        "options": options,
    }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
