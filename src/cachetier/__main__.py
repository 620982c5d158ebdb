"""`python -m cachetier`: the same command as the `cachetier` console script."""

from __future__ import annotations

from cachetier.cli import run

if __name__ == "__main__":
    run()
