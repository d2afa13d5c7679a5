"""Every script of the broker transport touches one slot on Redis Cluster: the keys each
one is given, built by the same functions the transport calls, share a hash slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from service.catalog.naming import (
    consumers_key,
    held_key,
    priority_list_keys,
    quarantine_key,
    unacked_key,
    wake_key,
)
from service.catalog.queues import CATALOG
from service.transport.cluster_bindings import DEADLINE, PERMANENT, TABLE


def one_slot(keys: list[str]) -> bool:
    return len({key_slot(key.encode()) for key in keys}) == 1


@pytest.mark.parametrize("queue", [*CATALOG.names, "abc.reply.celery.pidbox"])
def test_each_script_of_a_queue_touches_its_slot(queue: str) -> None:
    lists = priority_list_keys(queue, cluster=True)
    consumer = "host.1.abcdef12"
    # pop: lists, then unacked, held, consumers, wake, then the quarantine hash
    pop = [*lists, unacked_key(queue), held_key(queue, consumer), consumers_key(queue)]
    pop += [wake_key(queue), quarantine_key(queue)]
    assert one_slot(pop)
    # restore: consumers, held, unacked, wake, target lists
    restore = [consumers_key(queue), held_key(queue, consumer), unacked_key(queue)]
    assert one_slot([*restore, wake_key(queue), *lists])
    # quarantined message tracked; publish with its wake token; ack (one MULTI)
    assert one_slot([quarantine_key(queue), unacked_key(queue), held_key(queue, consumer)])
    assert one_slot([lists[-1], wake_key(queue)])
    assert one_slot([held_key(queue, consumer), unacked_key(queue)])


def test_single_redis_keeps_kombus_list_names() -> None:
    assert priority_list_keys("email") == ["email", *(f"email\x06\x16{n}" for n in (3, 6, 9))]
    assert priority_list_keys("email", cluster=True)[0] == "{email}"


@pytest.mark.parametrize("exchange", ["celery.pidbox", "reply.celery.pidbox", "default"])
def test_an_exchanges_binding_keys_share_its_tables_slot(exchange: str) -> None:
    assert one_slot([TABLE % exchange, PERMANENT % exchange, DEADLINE % exchange])
