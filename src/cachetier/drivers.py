"""Optional packages: which extra installs each, and the error that names it.

`pip install cachetier` brings only what the embedded SQLite default needs; the
Redis and PostgreSQL drivers and the framework, metrics and tracing layers come
with extras. Code that needs one calls `require(...)` before importing it, so a
missing package is reported as the extra to install rather than a bare
`ModuleNotFoundError` from deep inside an adapter.
"""

from __future__ import annotations

import importlib.util

from cachetier.errors import MissingDependencyError

BACKEND_DRIVERS: dict[str, tuple[str, str]] = {"redis": ("redis", "redis"), "postgres": ("asyncpg", "postgres")}
"""Backend name -> (module to import, extra that installs it)."""


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def missing(module: str, extra: str, needed_for: str) -> MissingDependencyError:
    """The error for `module` not being installed, naming `cachetier[extra]`."""
    return MissingDependencyError(
        f"{needed_for} needs the {module!r} package, which is not installed: pip install 'cachetier[{extra}]'"
    )


def require(module: str, extra: str, needed_for: str) -> None:
    """Raise `MissingDependencyError` naming `cachetier[extra]` when `module` is not installed."""
    if not installed(module):
        raise missing(module, extra, needed_for)


def require_backend(backend: str, why: str) -> None:
    """Raise `MissingDependencyError` when the driver of `backend` (redis, postgres) is missing."""
    if backend in BACKEND_DRIVERS:
        module, extra = BACKEND_DRIVERS[backend]
        require(module, extra, f"the {backend} backend ({why})")
