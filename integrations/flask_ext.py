"""Flask extension: `Cachetier(app)` or `init_app(app)`, configured from `CACHETIER_*` keys of `app.config`.

Needs the `flask` extra::

    from cachetier.integrations.flask_ext import Cachetier

    cachetier = Cachetier()

    def create_app() -> flask.Flask:
        app = flask.Flask(__name__)
        app.config["CACHETIER_DEFAULT_TTL"] = 300
        cachetier.init_app(app, middleware=True)  # also the WSGI HTTP cache
        return app

    # in a view: cachetier.cache.get("key", load, ttl=60)

A key `CACHETIER_<FIELD>` sets the `CacheConfig` field of that name
(`CACHETIER_REDIS_URL`, `CACHETIER_NAMESPACE`, ...) over the environment's
configuration; an unknown key raises `ConfigError` naming it. The cache is a
`SyncCache` in `app.extensions["cachetier"]`, the decorators' default unless
`set_default=False`. Flask has no shutdown signal, so it is closed when the
interpreter exits (or earlier by `close(app)`).
"""

from __future__ import annotations

import atexit
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from cachetier import CacheConfig, ConfigError, create_cache
from cachetier.drivers import missing
from cachetier.integrations.decorators import set_default_cache
from cachetier.integrations.wsgi import CacheMiddleware
from cachetier.sync import SyncCache

try:
    import flask
except ImportError as exc:
    raise missing("flask", "flask", "cachetier.integrations.flask_ext") from exc

PREFIX = "CACHETIER_"
EXTENSION = "cachetier"
_FIELDS = frozenset(field.name for field in dataclasses.fields(CacheConfig))


def config_from(settings: Mapping[str, Any]) -> CacheConfig:
    """`CacheConfig.from_env()` with the `CACHETIER_*` keys of `settings` (e.g. `app.config`) applied over it."""
    overrides: dict[str, Any] = {}
    for key, value in settings.items():
        if not key.startswith(PREFIX):
            continue
        field = key[len(PREFIX) :].lower()
        if field not in _FIELDS:
            raise ConfigError(f"{key} is not a cachetier setting (CACHETIER_ + a CacheConfig field name)")
        overrides[field] = value
    try:
        return CacheConfig.from_env(**overrides)
    except (ConfigError, TypeError, ValueError) as exc:
        names = ", ".join(PREFIX + name.upper() for name in overrides) or "the environment"
        raise ConfigError(f"cachetier settings from app.config ({names}) are invalid: {exc}") from exc


class Cachetier:
    """The extension object; one can serve several apps (each gets its own cache).

    Options, given here or to `init_app` (which wins): `cache` (a `SyncCache` to
    adopt instead of creating one; its creator closes it), `set_default` (default
    True), `middleware` (default False: wrap the app in the WSGI `CacheMiddleware`)
    and `middleware_options` (a dict passed to it).
    """

    def __init__(self, app: flask.Flask | None = None, **options: Any) -> None:
        self._options = options
        self._closers: dict[int, Callable[[], None]] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask, **options: Any) -> SyncCache:
        """Create the app's cache (or adopt one), register it, and arrange for it to be closed at exit."""
        settings = {**self._options, **options}
        unknown = set(settings) - {"cache", "set_default", "middleware", "middleware_options"}
        if unknown:
            raise ConfigError(f"unknown Cachetier options: {', '.join(sorted(unknown))}")
        given: SyncCache | None = settings.get("cache")
        sync = given if given is not None else SyncCache(create_cache(config_from(app.config)))
        app.extensions[EXTENSION] = sync
        if settings.get("set_default", True):
            set_default_cache(sync)
        if settings.get("middleware", False):
            wrapped = CacheMiddleware(app.wsgi_app, cache=sync, **settings.get("middleware_options", {}))
            app.wsgi_app = wrapped  # type: ignore[method-assign]
        if given is None:

            def close() -> None:
                sync.close()

            atexit.register(close)
            self._closers[id(sync)] = close
        return sync

    @staticmethod
    def cache_of(app: flask.Flask) -> SyncCache:
        """The cache `init_app` gave `app`."""
        sync = app.extensions.get(EXTENSION)
        if not isinstance(sync, SyncCache):
            raise ConfigError("cachetier is not set up on this app: call Cachetier().init_app(app)")
        return sync

    @property
    def cache(self) -> SyncCache:
        """The cache of the app handling the current request or app context."""
        return self.cache_of(flask.current_app)

    def close(self, app: flask.Flask) -> None:
        """Close `app`'s cache now instead of at exit, and stop it being the decorators' default; idempotent."""
        sync = self.cache_of(app)
        close = self._closers.pop(id(sync), None)
        if close is not None:
            atexit.unregister(close)
            sync.close()
        set_default_cache(None)
