"""The wheel and sdist build from a checkout without symlinks and ship `integrations/` as `cachetier.integrations`.

Everything runs on a `git -c core.symlinks=false clone` of the committed tree, so
nothing in the build may depend on a link in the repository.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# Imports every module of the installed package (private ones too: they are what the public ones load).
IMPORT_ALL = """
import importlib, pkgutil, sys
import cachetier
names = ["cachetier"] + [m.name for m in pkgutil.walk_packages(cachetier.__path__, "cachetier.")]
for name in names:
    importlib.import_module(name)
print("\\n".join(names))
"""


# The fresh venvs must import what they installed, not what this interpreter's PYTHONPATH points at.
CLEAN_ENV = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "PYTHONHOME"}}


def _run(*args: str | pathlib.Path, cwd: pathlib.Path | None = None, timeout: float = 240) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, check=False, capture_output=True, text=True, timeout=timeout, env=CLEAN_ENV
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _venv(path: pathlib.Path) -> pathlib.Path:
    _run(sys.executable, "-m", "venv", path, timeout=120)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A clone of the committed tree made as on a file system without symlink support."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    target = tmp_path_factory.mktemp("checkout") / "cachetier"
    _run("git", "-c", "core.symlinks=false", "clone", "--quiet", "--no-hardlinks", ROOT, target, timeout=120)
    return target


@pytest.fixture(scope="module")
def dists(checkout: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    """An sdist, a wheel built from that sdist, and a wheel built straight from the checkout."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out / "from_sdist", checkout)
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", out / "direct", checkout)
    (sdist,) = (out / "from_sdist").glob("cachetier-*.tar.gz")
    (wheel,) = (out / "from_sdist").glob("cachetier-*.whl")
    (direct,) = (out / "direct").glob("cachetier-*.whl")
    return {"sdist": sdist, "wheel": wheel, "direct": direct}


def test_checkout_has_no_symlinks(checkout: pathlib.Path) -> None:
    links = _run("git", "ls-files", "-s", cwd=checkout).splitlines()
    assert [line for line in links if line.startswith("120000")] == []


def test_wheel_ships_integrations_once_as_cachetier_integrations(dists: dict[str, pathlib.Path]) -> None:
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    assert "cachetier/py.typed" in names
    assert "cachetier/integrations/__init__.py" in names
    assert "cachetier/integrations/asgi.py" in names
    assert "cachetier/integrations/http_cache/__init__.py" in names
    assert len(names) == len(set(names))
    assert not [name for name in names if "__pycache__" in name or name.startswith("integrations/")]
    assert sorted(zipfile.ZipFile(dists["direct"]).namelist()) == sorted(names)


def test_sdist_carries_the_integrations_folder_and_the_build_hook(dists: dict[str, pathlib.Path]) -> None:
    with tarfile.open(dists["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"integrations/__init__.py", "integrations/asgi.py", "hatch_build.py", "pyproject.toml"} <= names
    assert "src/cachetier/integrations" not in names


@pytest.mark.timeout(600)
def test_wheel_from_sdist_installs_into_fresh_venv_and_every_module_imports(
    dists: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    python = _venv(tmp_path / "venv")
    _run(python, "-m", "pip", "install", "--quiet", f"{dists['wheel']}[test]", timeout=540)
    imported = _run(python, "-c", IMPORT_ALL, cwd=tmp_path, timeout=120).split()
    assert "cachetier.integrations.asgi" in imported
    assert "cachetier.integrations.http_cache.flow" in imported
    assert "cachetier.sync" in imported
    for name in imported:
        assert name.startswith("cachetier")


@pytest.mark.timeout(600)
def test_editable_install_of_a_symlink_free_checkout_imports_integrations(
    checkout: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    python = _venv(tmp_path / "venv")
    _run(python, "-m", "pip", "install", "--quiet", "-e", checkout, timeout=540)
    link = checkout / "src" / "cachetier" / "integrations"
    assert link.is_symlink()
    assert _run("git", "status", "--porcelain", cwd=checkout) == ""  # the link is git-ignored

    where = "import cachetier.integrations.asgi as m; print(m.__file__)"
    assert _run(python, "-c", where, cwd=tmp_path).strip() == str(link / "asgi.py")
    # Where no link can be made, the finder the install adds maps the package to the folder itself.
    os.remove(link)
    assert _run(python, "-c", where, cwd=tmp_path).strip() == str(checkout / "integrations" / "asgi.py")


LEAN_CHECK = """
import asyncio, importlib.metadata as md, cachetier

installed = {dist.metadata["Name"].lower() for dist in md.distributions()}
assert not installed & {"redis", "asyncpg", "hiredis", "starlette", "fastapi", "flask", "prometheus-client"}, installed

async def main():
    async with cachetier.create_cache() as cache:  # the embedded SQLite default
        await cache.set("k", [1, 2], tags=["t"])
        assert await cache.get("k") == [1, 2]
        assert cache.adapter_type == "sqlite", cache.adapter_type

asyncio.run(main())
try:
    cachetier.create_cache(adapter="redis")
except cachetier.MissingDependencyError as exc:
    print(exc)
"""


@pytest.mark.timeout(600)
def test_plain_install_pulls_no_drivers_and_runs_on_sqlite(
    dists: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    python = _venv(tmp_path / "venv")
    _run(python, "-m", "pip", "install", "--quiet", dists["wheel"], timeout=540)
    env_home = tmp_path / "home"
    result = subprocess.run(
        [str(python), "-c", LEAN_CHECK],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(env_home), "XDG_CACHE_HOME": str(env_home / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'cachetier[redis]'" in result.stdout
