"""The wheel ships the core and `integrations/` (through the src/cachetier/integrations link)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _public_modules() -> list[str]:
    modules = []
    files = [
        pathlib.Path(folder, name)
        for folder, _, names in os.walk(ROOT / "src" / "cachetier", followlinks=True)  # integrations is a link
        for name in names
        if name.endswith(".py")
    ]
    for path in sorted(files):
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        if any(part.startswith("_") and part != "__init__" for part in parts):
            continue
        modules.append(".".join(parts).removesuffix(".__init__"))
    return modules


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_installs_into_fresh_venv_and_every_public_module_imports(tmp_path: pathlib.Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=240,
    )
    (wheel,) = dist.glob("cachetier-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cachetier/py.typed" in names
    assert "cachetier/integrations/__init__.py" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[test]"],
        check=True,
        timeout=600,
    )
    modules = _public_modules()
    assert "cachetier.integrations" in modules
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    result = subprocess.run(
        [str(python), "-c", script, *modules], check=True, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.stdout.strip() == "ok"
