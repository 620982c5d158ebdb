"""The `cachetier` command (also `python -m cachetier`): inspect and manage a cache from a shell.

It reads the same environment configuration as `create_cache()`. Exit status:
0 success (or `health` healthy), 1 a key not found, no configured backend
answering (only the in-process memory fallback, which no other process sees),
or `health` degraded; 2 bad arguments, bad configuration or `health` unhealthy. Errors are one line
on stderr, never a traceback. `--json` prints one JSON document for scripts.
On a terminal, `clear` and `invalidate` show their elapsed time on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson

from cachetier.config import CacheConfig
from cachetier.errors import CacheError
from cachetier.factory import create_cache, create_health_check
from cachetier.manager import CacheManager

Command = Callable[[CacheManager, argparse.Namespace], Coroutine[Any, Any, tuple[int, Any]]]

HEALTH_EXIT = {"healthy": 0, "degraded": 1, "unhealthy": 2}
LONG_COMMANDS = frozenset({"clear", "invalidate"})
PROGRESS_INTERVAL = 0.5


class NoSharedBackendError(Exception):
    """Only the in-process memory fallback is available, which no other process shares."""


async def _stats(cache: CacheManager, args: argparse.Namespace) -> tuple[int, Any]:
    return 0, (await cache.get_stats()).to_dict()


async def _health(cache: CacheManager, args: argparse.Namespace) -> tuple[int, Any]:
    """Healthy: the configured backend answers. Degraded: a fallback serves. Unhealthy: none answers."""
    report = await create_health_check(cache)()
    reason = cache.selection_reason
    report["reason"] = reason
    # selection_reason is the public account of a fallback: "... (fallback after: ...)" or "fallback to memory: ...".
    if reason.startswith("fallback to memory"):
        report["status"] = "unhealthy"  # no shared backend: this process's memory is all there is
    elif "(fallback after:" in reason and report["status"] == "healthy":
        report["status"] = "degraded"
    return HEALTH_EXIT[report["status"]], report


async def _get(cache: CacheManager, args: argparse.Namespace) -> tuple[int, Any]:
    values = await cache.mget([args.key])
    found = args.key in values
    result = {"key": args.key, "found": found, "value": values.get(args.key)}
    return (0 if found else 1), result


async def _delete(cache: CacheManager, args: argparse.Namespace) -> tuple[int, Any]:
    return 0, {"key": args.key, "deleted": await cache.delete(args.key)}


async def _invalidate(cache: CacheManager, args: argparse.Namespace) -> tuple[int, Any]:
    removed = await cache.invalidate_by_tags(args.tags)
    return 0, {"tags": args.tags, "removed": removed}


async def _clear(cache: CacheManager, args: argparse.Namespace) -> tuple[int, Any]:
    return 0, {"namespace": cache.config.namespace, "removed": await cache.clear()}


COMMANDS: dict[str, tuple[Command, str]] = {
    "stats": (_stats, "print the cache's figures (L1, L2, loader calls)"),
    "health": (_health, "check the backend: exit 0 healthy, 1 degraded (a fallback serves), 2 unhealthy"),
    "get": (_get, "print the value stored under KEY (exit 1 when absent)"),
    "delete": (_delete, "delete KEY from the backend"),
    "invalidate": (_invalidate, "remove every entry carrying any of the TAGs"),
    "clear": (_clear, "remove every entry of the namespace (the configured one by default)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `--json` and `--namespace` are accepted before or after the command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("--namespace", metavar="NS", default=argparse.SUPPRESS, help="namespace (default: config)")
    parser = argparse.ArgumentParser(
        prog="cachetier",
        description="Inspect and manage a cachetier cache configured from the environment (CACHE_*, REDIS_*).",
    )
    parser.add_argument("--json", action="store_true", default=False, help="print JSON")
    parser.add_argument("--namespace", metavar="NS", default=None, help="namespace (default: config)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        if name in {"get", "delete"}:
            sub.add_argument("key", metavar="KEY")
        elif name == "invalidate":
            sub.add_argument("tags", metavar="TAG", nargs="+")
    return parser


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, value)]


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def render(result: Any, as_json: bool) -> str:
    """JSON for scripts, else aligned `name  value` rows."""
    if as_json:
        return orjson.dumps(result, default=str, option=orjson.OPT_SORT_KEYS).decode()
    rows = _flatten(result)
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name.ljust(width)}  {_show(value)}" for name, value in rows)


async def _run(args: argparse.Namespace, config: CacheConfig) -> tuple[int, Any]:
    command, _ = COMMANDS[args.command]
    cache = create_cache(config if args.namespace is None else config.replace(namespace=args.namespace))
    try:
        await cache.start()
        if cache.adapter_type == "memory" and config.adapter != "memory" and args.command != "health":
            # This process's own memory is not the cache the command is meant for: say so, change nothing.
            raise NoSharedBackendError(f"no configured backend answered ({cache.selection_reason})")
        if args.command in LONG_COMMANDS and sys.stderr.isatty():
            return await _with_progress(command(cache, args), f"{args.command} in {cache.config.namespace!r}")
        return await command(cache, args)
    finally:
        await cache.close()


async def _with_progress(work: Coroutine[Any, Any, tuple[int, Any]], what: str) -> tuple[int, Any]:
    """Show elapsed time on a terminal while `work` runs (a backend removes a namespace in one call)."""
    task = asyncio.ensure_future(work)
    started = time.monotonic()
    while True:
        sys.stderr.write(f"\r{what}: {time.monotonic() - started:.0f} s")
        sys.stderr.flush()
        done, _ = await asyncio.wait({task}, timeout=PROGRESS_INTERVAL)
        if done:
            sys.stderr.write(f"\r{what}: done in {time.monotonic() - started:.1f} s\n")
            return task.result()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with the usage on bad arguments
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        config = CacheConfig.from_env()
        status, result = asyncio.run(_run(args, config))
    except CacheError as exc:
        print(f"cachetier: {exc}", file=sys.stderr)
        return 2 if args.command != "health" else HEALTH_EXIT["unhealthy"]
    except NoSharedBackendError as exc:
        print(f"cachetier: {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cachetier: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a CLI prints one line, never a traceback
        print(f"cachetier: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2 if args.command == "health" else 1
    if args.command == "get" and status == 1 and not args.json:
        print(f"cachetier: {args.key!r} not found", file=sys.stderr)
    elif args.command == "get" and not args.json:
        print(_show(result["value"]))
    else:
        print(render(result, args.json))
    return status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
