"""Validation of what `PostgresAdapter` sends to the server: table names, keys, tags, prefixes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from cachetier.errors import ConfigError, InvalidKeyError, InvalidTagError

MAX_KEY_BYTES: Final = 2048
"""Longest key or tag, in UTF-8 bytes, that fits a btree/GIN index entry with room to spare."""

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(table_name: str) -> None:
    """ConfigError unless `table_name` is a plain identifier (it is spliced into SQL, always quoted)."""
    if not _IDENTIFIER.fullmatch(table_name):
        raise ConfigError(
            f"table_name must be a plain SQL identifier (ASCII letters, digits, _; at most 63), got {table_name!r}"
        )


def check_key(key: str, error: type[ValueError] = InvalidKeyError, what: str = "keys") -> None:
    """`error` for a key PostgreSQL text or its indexes cannot hold (NUL, over `MAX_KEY_BYTES`)."""
    # Four bytes per character at most, so short strings skip the encode.
    if "\x00" in key or (len(key) * 4 > MAX_KEY_BYTES and len(key.encode()) > MAX_KEY_BYTES):
        raise error(f"PostgreSQL {what} must be at most {MAX_KEY_BYTES} UTF-8 bytes, without NUL: {key[:40]!r}...")


def check_keys(keys: Sequence[str]) -> None:
    """`check_key` for each key, in one pass over all of them when every key is short."""
    try:
        short = "\x00" not in "".join(keys) and max(map(len, keys)) * 4 <= MAX_KEY_BYTES
    except TypeError:  # a key that is no str: the per-key check below raises as before
        short = False
    if not short:
        for key in keys:
            check_key(key)


def check_tags(tags: Sequence[str]) -> None:
    """`check_key` for each tag, raising InvalidTagError."""
    for tag in tags:
        check_key(tag, InvalidTagError, "tags")


def prefix_upper_bound(prefix: str) -> str | None:
    """Smallest string above every string starting with `prefix`, in code-point order; None if unbounded."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be encoded; skip to the next real character
        following = 0xE000
    return stem[:-1] + chr(following)
