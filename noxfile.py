"""Developer sessions: `nox -s tests lint typecheck bench`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    session.run("bash", ".ci/start-services", external=True)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[lint]")
    session.run("mypy")
    session.run("mypy", "tests/typing")


@nox.session
def bench(session: nox.Session) -> None:
    session.run("bash", ".ci/start-services", external=True)
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bench", *session.posargs)
