"""Hatch build hook: how an editable install finds `cachetier.integrations`.

A wheel ships the top-level `integrations/` folder as `cachetier/integrations` through
`force-include` in pyproject.toml, so no symlink is needed to build one. An editable
install instead runs the files where they are, so it needs a path from
`cachetier.integrations` to `integrations/`:

- `src/cachetier/integrations` is created as a git-ignored link to `../../integrations`,
  so mypy, IDEs and the import system see the real layout;
- where links cannot be made (Windows without developer mode), a finder installed by a
  `.pth` file maps the package to the folder at import time (mypy then does not see it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# Run by the .pth line (site exec()s lines starting with "import"). It is inlined rather than a module
# of its own: pytest marks every module of a distribution with a plugin for assertion rewriting and
# warns about any that is already imported, as a module imported by a .pth always is.
FINDER = """
class _CachetierIntegrationsFinder:
    folder = {folder!r}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "cachetier.integrations":
            return None
        import importlib.util, os
        init = os.path.join(cls.folder, "__init__.py")
        return importlib.util.spec_from_file_location(name, init, submodule_search_locations=[cls.folder])

# Last on the path: a real src/cachetier/integrations (the link) is found first.
sys.meta_path.append(_CachetierIntegrationsFinder)
"""


class IntegrationsHook(BuildHookInterface):  # type: ignore[type-arg]
    """Links `src/cachetier/integrations` for editable installs; standard wheels use force-include."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        folder = os.path.join(self.root, "integrations")
        link = os.path.join(self.root, "src", "cachetier", "integrations")
        if not os.path.lexists(link):
            try:
                os.symlink(os.path.join("..", "..", "integrations"), link, target_is_directory=True)
            except OSError as exc:
                self.app.display_warning(f"cachetier: no link at {link} ({exc}); using an import finder instead")
        self._generated = tempfile.mkdtemp(prefix="cachetier-editable-")
        pth = os.path.join(self._generated, "_cachetier_integrations.pth")
        with open(pth, "w", encoding="utf-8") as file:
            file.write(f"import sys; exec({FINDER.format(folder=folder)!r})\n")
        # Replaces the configured force-include for this build: the editable wheel ships no copies.
        build_data["force_include_editable"] = {pth: "_cachetier_integrations.pth"}

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        generated = getattr(self, "_generated", None)
        if generated is not None:
            shutil.rmtree(generated, ignore_errors=True)
