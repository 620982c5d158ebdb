"""Notifying purge hooks (e.g. a CDN) after tag invalidations, without failing them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cachetier.protocols import PurgeHook

logger = logging.getLogger("cachetier")


class PurgeNotifier:
    """Calls every hook in turn; a hook that raises is logged and counted in `failures`."""

    def __init__(self, hooks: Sequence[PurgeHook] = ()) -> None:
        self.hooks: list[PurgeHook] = list(hooks)
        self.failures = 0

    async def notify(self, tags: tuple[str, ...]) -> None:
        for hook in self.hooks:
            try:
                await hook.purge_tags(tags)
            except Exception as exc:
                self.failures += 1
                logger.warning("cachetier: purge hook %r failed for %s: %s", hook, list(tags), exc)
