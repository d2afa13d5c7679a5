"""Switching `autoscaler.mode` in place (hpa <-> keda) in one `pulumi up`.

KEDA's admission webhook rejects a ScaledObject while an HPA it does not own targets the same
Deployment, so the old autoscaler must be deleted BEFORE the new one is created. Under mocks
the engine's step order cannot run; these tests pin what drives it: each autoscaler aliases
the URN the other mode registers (same resource, so a kind change is a replacement) and is
replaced delete-first."""

from __future__ import annotations

from typing import Any

import pytest
from infra_harness import dev_in_mode

from infra.autoscaler import HPA_TYPE, SCALED_OBJECT_TYPE

KINDS = {"hpa": HPA_TYPE, "keda": SCALED_OBJECT_TYPE}


def rendered(mode: str) -> dict[str, Any]:
    """The dev stack with only `autoscaler.mode` changed."""
    return dev_in_mode(mode)


def autoscaler_urns(result: dict[str, Any], typ: str) -> set[str]:
    return {u for u in result["urns"] if u.split("::")[-2].endswith(f"${typ}")}


@pytest.mark.parametrize(("old", "new"), [("hpa", "keda"), ("keda", "hpa")])
def test_new_autoscaler_takes_over_the_old_one_delete_first(old: str, new: str) -> None:
    before, after = rendered(old), rendered(new)
    old_urns = autoscaler_urns(before, KINDS[old])
    new_urns = autoscaler_urns(after, KINDS[new])
    # Each mode registers one autoscaler per queue, of the type the constants name
    assert len(old_urns) == len(new_urns) == len(after["exports"]["worker_deployments"]["value"])
    options = {o["name"]: o for o in after["options"] if o["type"] == KINDS[new]}
    for urn in new_urns:
        name = urn.rsplit("::", 1)[1]
        opts = options[name]
        # Its alias names exactly the URN the old mode registered for that queue
        assert KINDS[old] in opts["aliasTypes"]
        assert urn.replace(f"${KINDS[new]}::", f"${KINDS[old]}::") in old_urns
        # And the replacement deletes the old object before creating the new one
        assert opts["deleteBeforeReplace"] is True
        assert {"apiVersion", "kind"} <= set(opts["replaceOnChanges"])
