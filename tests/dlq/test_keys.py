"""The DLQ's Redis key layout: pure functions, so existing entries stay readable after an
upgrade only if these names never change."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

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
        (keys.entries_key, "email", "fleet:dlq:email:entries"),
        (keys.envelopes_key, "email", "fleet:dlq:email:envelopes"),
        (keys.index_key, "high_priority", "fleet:dlq:high_priority:index"),
        (keys.reason_index_key, "unknown_task", "fleet:dlq:by-reason:unknown_task"),
        (
            keys.task_index_key,
            "service.tasks.email.send_email",
            "fleet:dlq:by-task:service.tasks.email.send_email",
        ),
        (keys.task_index_key, "junk.from.a.sender", f"fleet:dlq:by-task:{UNREGISTERED}"),
        (keys.first_failure_key, "t-1", "fleet:first-failure:t-1"),
    ],
)
def test_derived_keys(derive: Callable[[str], str], argument: str, expected: str) -> None:
    assert derive(argument) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GLOBAL_INDEX", "fleet:dlq:index"),
        ("STATS_KEY", "fleet:dlq:stats"),
        ("CLAIMS_KEY", "fleet:dlq:replaying"),
    ],
)
def test_fixed_keys(name: str, expected: str) -> None:
    assert getattr(keys, name) == expected


def test_quarantine_key() -> None:
    assert naming.QUARANTINE_KEY == "fleet:quarantine"


@pytest.mark.parametrize(
    ("queue", "entry_id"), [("email", "abc"), ("default", "id|with|bars"), ("q", "")]
)
def test_member_round_trips(queue: str, entry_id: str) -> None:
    assert keys.split_member(keys.member(queue, entry_id)) == (queue, entry_id)


@pytest.mark.parametrize("list_key", ["default", "email\x06\x163", "a|b"])
def test_quarantine_field_names_its_list(list_key: str) -> None:
    item = b"\xff not a message"
    field = naming.quarantine_field(list_key, item)
    assert field == f"{list_key}|{hashlib.sha1(item).hexdigest()}"
    assert naming.quarantine_list_key(field) == list_key


def test_entry_keys_are_in_script_order() -> None:
    assert keys.entry_keys("email", "unknown_task", "junk") == [
        "fleet:dlq:email:entries",
        "fleet:dlq:email:envelopes",
        "fleet:dlq:email:index",
        "fleet:dlq:index",
        "fleet:dlq:by-reason:unknown_task",
        f"fleet:dlq:by-task:{UNREGISTERED}",
        "fleet:dlq:stats",
    ]


def test_task_names_need_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capping a name before any app installed its task names is an error, not a guess: a
    guess would write index keys that `fleet dlq` cannot find again."""
    monkeypatch.setattr(task_names, "_source", None)
    with pytest.raises(TaskNamesUnknown, match="create the app first"):
        keys.task_index_key("service.tasks.email.send_email")
