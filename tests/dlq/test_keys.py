"""The DLQ's Redis key layout: pure functions, so existing entries stay readable after an
upgrade only if these names never change (the layout before the hash tags is migrated:
tests/dlq/test_legacy_layout.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from redis.crc import key_slot

from service import task_names
from service.catalog import naming
from service.dlq import keys
from service.task_names import UNREGISTERED, TaskNamesUnknown


@pytest.fixture(autouse=True)
def registered_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names an app would install (service.app_factory), without building one."""
    monkeypatch.setattr(task_names, "_source", lambda: ["service.tasks.email.send_email"])
    monkeypatch.setattr(task_names, "_registered", None)


@pytest.mark.parametrize(
    ("derive", "argument", "expected"),
    [
        (keys.entries_key, "email", "fleet:dlq:{email}:entries"),
        (keys.envelopes_key, "email", "fleet:dlq:{email}:envelopes"),
        (keys.index_key, "high_priority", "fleet:dlq:{high_priority}:index"),
        (keys.stats_key, "email", "fleet:dlq:{email}:stats"),
        (keys.claims_key, "email", "fleet:dlq:{email}:replaying"),
        (keys.first_failure_key, "t-1", "fleet:first-failure:t-1"),
    ],
)
def test_derived_keys(derive: Callable[[str], str], argument: str, expected: str) -> None:
    assert derive(argument) == expected


def test_filter_indexes_are_per_queue() -> None:
    assert (
        keys.reason_index_key("email", "unknown_task") == "fleet:dlq:{email}:by-reason:unknown_task"
    )
    assert (
        keys.task_index_key("email", "service.tasks.email.send_email")
        == "fleet:dlq:{email}:by-task:service.tasks.email.send_email"
    )
    assert keys.task_index_key("email", "junk.from.a.sender") == (
        f"fleet:dlq:{{email}}:by-task:{UNREGISTERED}"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [("QUEUES_KEY", "fleet:dlq:queues")],
)
def test_fixed_keys(name: str, expected: str) -> None:
    assert getattr(keys, name) == expected


def test_quarantine_key() -> None:
    # One per queue, in the queue's slot; the global hash of earlier releases is still drained.
    assert naming.quarantine_key("email") == "fleet:{email}:quarantine"
    assert naming.LEGACY_QUARANTINE_KEY == "fleet:quarantine"


@pytest.mark.parametrize("list_key", ["default", "email\x06\x163", "a|b"])
def test_quarantine_field_names_its_list(list_key: str) -> None:
    item = b"\xff not a message"
    field = naming.quarantine_field(list_key, item)
    assert field == f"{list_key}|{hashlib.sha1(item).hexdigest()}"
    assert naming.quarantine_list_key(field) == list_key


def test_entry_keys_are_in_script_order_and_one_slot() -> None:
    entry_keys = keys.entry_keys("email", "unknown_task", "junk")
    assert entry_keys == [
        "fleet:dlq:{email}:entries",
        "fleet:dlq:{email}:envelopes",
        "fleet:dlq:{email}:index",
        "fleet:dlq:{email}:by-reason:unknown_task",
        f"fleet:dlq:{{email}}:by-task:{UNREGISTERED}",
        "fleet:dlq:{email}:stats",
    ]
    # Every key a store script touches, and the queue's claims, hash to the queue's slot.
    slots = {key_slot(k.encode()) for k in [*entry_keys, keys.claims_key("email")]}
    assert slots == {key_slot(b"email")}


def test_task_names_need_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capping a name before any app installed its task names is an error, not a guess: a
    guess would write index keys that `fleet dlq` cannot find again."""
    monkeypatch.setattr(task_names, "_source", None)
    with pytest.raises(TaskNamesUnknown, match="create the app first"):
        keys.task_index_key("email", "service.tasks.email.send_email")
