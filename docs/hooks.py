"""MkDocs hook: pages take README sections and a configuration table generated from `CacheConfig`.

`<!-- readme: Heading -->` is replaced by the body of the README's `## Heading`
section, so the README stays the one source; `<!-- config-reference -->` by a
table of `CacheConfig`'s fields with their defaults and environment variables.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
README_MARK = re.compile(r"<!-- readme: (.+?) -->")


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError(f"README.md has no section '## {title}'")
    return match.group(1).strip() + "\n"


def config_reference() -> str:
    from cachetier import CacheConfig
    from cachetier.config import _ENV_FIELDS  # the one table of variable names; read here to document it

    variables: dict[str, list[str]] = {}
    for variable, (field, _) in _ENV_FIELDS.items():
        variables.setdefault(field, []).append(f"`{variable}`")
    rows = ["| field | type | default | environment |", "|---|---|---|---|"]
    for field in dataclasses.fields(CacheConfig):
        default = field.default if field.default is not dataclasses.MISSING else "—"
        kind = str(field.type).replace("|", "\\|")
        rows.append(
            f"| `{field.name}` | `{kind}` | `{default!r}` | {', '.join(variables.get(field.name, [])) or '—'} |"
        )
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    markdown = README_MARK.sub(lambda match: readme_section(match.group(1)), markdown)
    return markdown.replace("<!-- config-reference -->", config_reference())
