"""celery-fleet policy pack: `pulumi preview --policy-pack policy` (serves until the engine
disconnects, so tests import `policy.pack` and `policy.checks` instead)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
