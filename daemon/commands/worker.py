"""`traum worker`: run the cluster's ingest and render jobs on this machine."""

from __future__ import annotations

import argparse

from daemon.config import load_config

_LANES = "ingest,render"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``worker``."""
    worker = sub.add_parser("worker", parents=[common],
                            help="run ingest and render jobs queued by a cluster's traum run",
                            description="Run the jobs that traum run queues on the [cluster] "
                            "PostgreSQL, on any machine that mounts the same library and "
                            "outbox folders. SIGTERM lets the running jobs finish.")
    worker.add_argument("--lanes", default=_LANES, type=_lanes, metavar="LIST",
                        help=f"the lanes to work on (default: {_LANES})")
    worker.add_argument("--concurrency", type=_count, metavar="N",
                        help="jobs at once (default: one per lane)")
    worker.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    # Only here, with a config that names a cluster: one machine never loads procrastinate.
    from daemon.cluster.worker import run_worker
    from daemon.service.notify import configure_logging

    configure_logging(config.daemon.log_level, debug=args.debug)
    return run_worker(config, lanes=args.lanes,
                      concurrency=args.concurrency or len(args.lanes))


def _lanes(text: str) -> tuple[str, ...]:
    from daemon.cluster.app import LANES

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LANES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown lane {', '.join(map(repr, unknown)) or '(none)'} "
            f"(choose from {', '.join(LANES)})")
    return tuple(lane for lane in LANES if lane in names)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 64 (got {text!r})")
    return int(text)
