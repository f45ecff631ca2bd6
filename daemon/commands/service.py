"""`traum run` (the daemon in the foreground) and `traum service` (its systemd unit)."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.commands.common import EXIT_OK, config_path, traum_executable
from daemon.config import load_config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``run`` and ``service``."""
    run = sub.add_parser("run", parents=[common],
                         help="run the daemon in the foreground until SIGTERM",
                         description="Watch inbox/ and outbox/requests/, ingest kits and "
                         "render prompts until SIGTERM. SIGHUP reloads config and rules.")
    run.set_defaults(handler=cmd_run)
    service = sub.add_parser("service", parents=[common],
                             help="print or install the systemd unit",
                             description="Print or install a hardened Type=notify unit.")
    service.add_argument("action", choices=("print", "install"))
    service.add_argument("--user", action="store_true", help="a user unit (~/.config)")
    service.set_defaults(handler=cmd_service)


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.service.daemon import run_daemon

    return run_daemon(Path(args.config) if args.config else None)


def cmd_service(args: argparse.Namespace) -> int:
    from daemon.config import ensure_folders
    from daemon.service.unit import install_unit, render_unit

    config = load_config(args.config)
    text = render_unit(user=args.user, exe=traum_executable(),
                       config_path=config_path(config), paths=config.paths,
                       stop_timeout=config.daemon.stop_timeout)
    if args.action == "print":
        print(text, end="")
        return EXIT_OK
    ensure_folders(config.paths)  # systemd refuses ReadWritePaths= that do not exist
    path = install_unit(user=args.user, text=text)
    scope = "--user " if args.user else ""
    print(f"installed {path}\nenable it with: systemctl {scope}enable --now {path.name}")
    return EXIT_OK
