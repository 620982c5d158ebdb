from __future__ import annotations

import random
import time

import pytest

from cachetier import l1
from cachetier.l1 import L1Store
from cachetier.sentinel import MISS


def later(seconds: float = 60) -> float:
    return time.time() + seconds


def test_get_returns_stored_value_until_expiry() -> None:
    store = L1Store(10)
    store.set("a", {"v": 1}, later())
    store.set("b", 2, time.time() - 0.001)
    assert store.get("a") == {"v": 1}
    assert store.get("b") is MISS
    assert len(store) == 1


def test_cached_none_is_not_a_miss() -> None:
    store = L1Store(10)
    store.set("n", None, later())
    assert store.get("n") is None


def test_entry_count_never_exceeds_bound() -> None:
    store = L1Store(100)
    for i in range(1000):
        store.set(f"k{i}", i, later())
        assert len(store) <= 100


def test_byte_bound_evicts_until_within_budget() -> None:
    store = L1Store(1000, max_bytes=500)
    for i in range(50):
        store.set(f"k{i}", i, later(), size=100)
    assert store.size_bytes <= 500
    assert len(store) == 5


def test_frequently_read_keys_survive_a_scan() -> None:
    store = L1Store(100)
    for i in range(50):
        store.set(f"hot{i}", i, later())
    for _ in range(3):
        for i in range(50):
            assert store.get(f"hot{i}") == i
    for i in range(1000):
        store.set(f"scan{i}", i, later())
    survivors = sum(store.get(f"hot{i}") is not MISS for i in range(50))
    assert survivors == 50


def test_recently_evicted_key_is_admitted_to_main_queue() -> None:
    store = L1Store(10)
    store.set("ghost", 0, later())
    for i in range(20):
        store.set(f"k{i}", i, later())
    assert store.get("ghost") is MISS
    store.set("ghost", 1, later())
    for i in range(20, 29):
        store.set(f"k{i}", i, later())
    assert store.get("ghost") == 1


def test_invalidate_tags_drops_tagged_entries_only() -> None:
    store = L1Store(10)
    store.set("a", 1, later(), ("t1",))
    store.set("b", 2, later(), ("t1", "t2"))
    store.set("c", 3, later())
    assert store.invalidate_tags(["t1"]) == 2
    assert (store.get("a"), store.get("b"), store.get("c")) == (MISS, MISS, 3)
    assert store.invalidate_tags(["t2"]) == 0


def test_rewriting_an_entry_replaces_its_tags() -> None:
    store = L1Store(10)
    store.set("a", 1, later(), ("old",))
    store.set("a", 2, later(), ("new",))
    assert store.invalidate_tags(["old"]) == 0
    assert store.get("a") == 2
    assert store.invalidate_tags(["new"]) == 1


def test_clear_with_prefix_keeps_other_keys() -> None:
    store = L1Store(10)
    store.set("ns1:a", 1, later())
    store.set("ns2:a", 2, later())
    store.clear("ns1:")
    assert store.get("ns1:a") is MISS
    assert store.get("ns2:a") == 2


def test_queues_stay_bounded_under_set_delete_churn() -> None:
    store = L1Store(100)
    for i in range(10_000):
        store.set(f"k{i}", i, later())
        store.delete(f"k{i}")
    assert len(store._small) + len(store._main) <= 2 * 100 + 64


def test_random_operations_keep_internal_counts_consistent() -> None:
    rng = random.Random(7)
    store = L1Store(50, max_bytes=2000)
    for _ in range(5000):
        key = f"k{rng.randrange(200)}"
        action = rng.random()
        if action < 0.4:
            store.set(key, 1, later(), (f"t{rng.randrange(5)}",), size=rng.randrange(1, 80))
        elif action < 0.5:
            batch = [f"k{rng.randrange(200)}" for _ in range(rng.randrange(1, 8))]
            store.fill_many([(k, 1, later(), (f"t{rng.randrange(5)}",), rng.randrange(1, 80)) for k in batch])
        elif action < 0.8:
            store.get(key)
        elif action < 0.95:
            store.delete(key)
        else:
            store.invalidate_tags([f"t{rng.randrange(5)}"])
        assert len(store) <= 50
        assert store.size_bytes == sum(entry.size for entry in store._data.values())
        live_small = sum(1 for entry in store._small if not entry.dead)
        assert live_small == store._small_live
        tombstones = [entry for queue in (store._small, store._main) for entry in queue if entry.dead]
        assert len(tombstones) == store._dead <= len(store) + 64
        assert all(entry.value is None and not entry.tags for entry in tombstones)


def test_dead_entries_keep_neither_their_values_nor_their_tags() -> None:
    store = L1Store(100)
    store.set("evicted", [0] * 1000, later())
    store.set("deleted", [1] * 1000, later())
    store.set("invalidated", [2] * 1000, later(), ("t",))
    store.set("expired", [3] * 1000, time.time() - 1)
    store.delete("deleted")
    store.invalidate_tags(["t"])
    assert store.get("expired") is MISS
    tombstones = [entry for queue in (store._small, store._main) for entry in queue if entry.dead]
    assert {entry.key for entry in tombstones} == {"deleted", "invalidated", "expired"}
    assert all(entry.value is None and entry.tags == () for entry in tombstones)


def test_tombstones_never_outnumber_live_entries_by_more_than_a_constant() -> None:
    # A large store with few live entries: before, tombstones piled up to 2 x max_entries (20,064 here).
    store = L1Store(10_000)
    for i in range(10):
        store.set(f"live{i}", i, later())
    for i in range(5_000):
        store.set(f"k{i}", i, later(), ("t",))
        store.invalidate_tags(["t"])
        assert len(store._small) + len(store._main) <= 2 * len(store) + 65
    assert len(store) == 10
    assert all(store.get(f"live{i}") == i for i in range(10))


def test_peek_from_another_thread_never_serves_the_dropped_value_of_an_entry_killed_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `peek` runs outside the event loop; the loop may kill the entry between peek's reads.
    # Killing it from inside the clock call puts that kill at the worst point, deterministically.
    store = L1Store(10)
    store.set("a", "value", later())
    real_now = time.time

    def now_while_the_loop_deletes() -> float:
        store.delete("a")
        return real_now()

    monkeypatch.setattr(l1, "_now", now_while_the_loop_deletes)
    assert store.peek("a") in ("value", MISS)  # never None: a dead entry's dropped value


def test_the_ghost_list_forgets_its_oldest_keys_first() -> None:
    store = L1Store(10)
    for i in range(30):  # k0..k19 are evicted in order; the ghost list keeps the last 10 (k10..k19)
        store.set(f"k{i}", i, later())
    store.set("k0", 0, later())  # forgotten: probationary again
    store.set("k15", 15, later())  # remembered: admitted to the main queue
    for i in range(12):
        store.set(f"n{i}", i, later())
    assert store.get("k0") is MISS
    assert store.get("k15") == 15
    assert len(store._ghost) <= store.max_entries


def test_a_bulk_fill_copies_every_key_while_there_is_room() -> None:
    store = L1Store(10)
    store.set("mine", "newer", later())
    store.fill_many([(f"k{i}", i, later(), (), 1) for i in range(5)] + [("mine", "older", later(), (), 1)])
    assert [store.get(f"k{i}") for i in range(5)] == list(range(5))
    assert store.get("mine") == "newer"  # as `fill`: a present entry was written after the read began


def test_a_bulk_fill_of_a_full_store_remembers_new_keys_and_admits_them_when_read_again() -> None:
    store = L1Store(10)
    for i in range(10):
        store.set(f"old{i}", i, later())
    store.fill_many([(f"new{i}", i, later(), (), 1) for i in range(5)])
    assert all(store.get(f"new{i}") is MISS for i in range(5))  # a first sighting evicts nothing
    assert all(f"old{i}" in store._data for i in range(10))  # (not `get`: a read would protect them below)
    store.fill_many([(f"new{i}", i, later(), (), 1) for i in range(5)])  # seen again: admitted to main
    assert all(store.get(f"new{i}") == i for i in range(5))
    assert all(entry.in_main for key, entry in store._data.items() if key.startswith("new"))
    assert len(store) == 10


def test_a_bulk_fill_respects_the_byte_bound() -> None:
    store = L1Store(100, max_bytes=50)
    store.fill_many([(f"k{i}", i, later(), (), 20) for i in range(5)])
    assert store.size_bytes <= 50
    store.fill_many([(f"k{i}", i, later(), (), 20) for i in range(5)])
    assert store.size_bytes <= 50


def test_get_many_answers_as_get_does_key_by_key() -> None:
    store = L1Store(10)
    store.set("live", 1, later())
    store.set("expired", 2, later(-1))
    assert store.get_many(["live", "absent", "expired", "live"]) == [1, MISS, MISS, 1]
    assert (store.hits, store.misses) == (2, 2)
    assert "expired" not in store.entries  # dropped, as `get` drops it
    assert store.entries["live"].freq == 2


def test_a_full_store_wants_only_keys_its_ghost_list_knows_and_remember_notes_the_others() -> None:
    store = L1Store(3)
    assert store.wants_any(["a"])  # room
    for key in ("a", "b", "c", "d"):  # "a" is evicted to the ghost list
        store.set(key, 1, later())
    assert not store.wants_any(["x", "y", "b"])  # full; "b" is present, so not wanted either
    assert store.wants_any(["x", "a"])
    store.remember(["x", "y", "b"])
    assert store.wants_any(["x"])
    assert "b" not in store._ghost
    assert len(store._ghost) <= store.max_entries
