"""The README's Flask snippets pass `mypy --strict` as written (a user's first copy-paste should)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _flask_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Flask") : text.index("\n## ", text.index("\n## Flask") + 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.slow
def test_the_flask_snippets_pass_mypy_strict(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy comes with the lint extra")
    blocks = _flask_blocks()
    assert len(blocks) == 2
    files = []
    for number, block in enumerate(blocks):
        path = tmp_path / f"flask_snippet_{number}.py"
        path.write_text(block, encoding="utf-8")
        files.append(str(path))
    out, err, status = api.run(["--strict", "--cache-dir", str(tmp_path / ".mypy_cache"), *files])
    assert status == 0, out + err
