"""`traum gc`: keeping the library's folders within their configured size and age."""

from __future__ import annotations

import argparse
import time

from daemon.commands.common import EXIT_OK, print_json
from daemon.config import load_config
from daemon.folders import ERROR_SUFFIX, expired_leftovers, remove_leftovers


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``gc``."""
    gc = sub.add_parser("gc", parents=[common],
                        help="prune the conform cache, expire quarantine and error files",
                        description="Delete conform cache files of older conform versions, "
                        "then the least recently used, until the cache fits in "
                        "render.cache_max_mb (renders prune it too; this does it now). "
                        "Delete quarantined files (with their reasons) and NAME.error.txt "
                        "files older than daemon.keep_days days; the daemon then tries "
                        "such a prompt once more.")
    gc.add_argument("--json", action="store_true", help="print the deleted files as JSON")
    gc.set_defaults(handler=cmd_gc)


def cmd_gc(args: argparse.Namespace) -> int:
    from daemon.work import Engine

    config = load_config(args.config)
    pruned = Engine(config).prune_cache()
    now = time.time()
    expired = remove_leftovers(config.paths, expired_leftovers(
        config.paths, keep_days=config.daemon.keep_days, now=now))
    if args.json:
        print_json([{"path": str(item.path), "bytes": item.size, "reason": item.reason}
                    for item in pruned]
                   + [{"path": str(item.path), "reason": _expiry_reason(item.path.name),
                       "days": round(item.age_days(now), 1)} for item in expired])
        return EXIT_OK
    for item in pruned:
        print(f"removed {item.path.name} ({item.size / 2**20:.1f} MB, {item.reason})")
    for item in expired:
        print(f"removed {item.path} ({_expiry_reason(item.path.name)}, "
              f"{item.age_days(now):.0f} days old)")
    freed = sum(item.size for item in pruned) / 2**20
    print(f"conform cache: {len(pruned)} files removed, {freed:.1f} MB freed; "
          f"limit {config.render.cache_max_mb} MB")
    print(f"quarantine and error files: {len(expired)} older than "
          f"{config.daemon.keep_days} days removed")
    return EXIT_OK


def _expiry_reason(name: str) -> str:
    return "expired error file" if name.endswith(ERROR_SUFFIX) else "expired quarantine"
