"""The history checker itself: it must see staleness where there is some, and only there."""

from __future__ import annotations

import pytest

from linearizability import check


def test_a_read_of_an_older_version_after_a_newer_write_returned_is_stale() -> None:
    writes = [(0, 1, 1.0), (0, 2, 2.0)]
    assert check(writes, [(0, 1, 2.5)], bound=0.1) == (1, pytest.approx(0.5))


def test_a_read_within_the_bound_or_before_the_write_returned_is_not_counted() -> None:
    writes = [(0, 1, 1.0), (0, 2, 2.0)]
    reads = [(0, 1, 1.95), (0, 1, 2.05), (0, 2, 9.0), (1, 0, 9.0)]
    stale, worst = check(writes, reads, bound=0.1)
    assert stale == 0
    assert worst == pytest.approx(0.05)


def test_staleness_counts_from_the_first_newer_write_that_returned() -> None:
    writes = [(0, 3, 5.0), (0, 2, 3.0)]
    assert check(writes, [(0, 1, 6.0)], bound=1.0) == (1, pytest.approx(3.0))


def test_writes_during_an_outage_count_from_its_end() -> None:
    writes = [(0, 2, 2.0)]
    assert check(writes, [(0, 1, 3.0)], bound=0.5, quiet_from=1.5, quiet_until=2.8) == (0, pytest.approx(0.2))
    assert check(writes, [(0, 1, 3.0)], bound=0.5) == (1, pytest.approx(1.0))
