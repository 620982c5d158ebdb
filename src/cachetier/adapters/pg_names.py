"""Names of the PostgreSQL objects that belong to one cache table (the design is in `cachetier.adapters.postgres`)."""

from __future__ import annotations

import hashlib


def lock_id(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (a table, or a table and a purpose)."""
    return int.from_bytes(hashlib.blake2b(f"cachetier:{name}".encode(), digest_size=8).digest(), signed=True)


def index_name(table_name: str, suffix: str) -> str:
    """`<table>_<suffix>`, shortened with a hash when PostgreSQL would truncate it (and collide)."""
    name = f"{table_name}_{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.blake2b(table_name.encode(), digest_size=4).hexdigest()
    return f"{table_name[: 63 - len(suffix) - 10]}_{digest}_{suffix}"


def names(table_name: str) -> dict[str, str]:
    """Quoted names of the objects that go with `table_name`, and its change channel (unquoted)."""
    quoted = {
        suffix: f'"{index_name(table_name, suffix)}"'
        for suffix in ("leases", "leases_exp", "marks", "lease_seq", "set_leased", "invalidate", "clear", "delete")
    }
    quoted["channel"] = index_name(table_name, "changes")
    return quoted
