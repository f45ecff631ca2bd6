"""`traum run` (the daemon in the foreground) and `traum service` (its systemd unit)."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.commands.common import EXIT_OK, config_path, traum_executable
from daemon.config import Config, ensure_folders, load_config
from daemon.errors import ConfigError, TraumError
from daemon.service.account import (
    DEFAULT_USER,
    Account,
    check_user_name,
    ensure_account,
    hand_over,
    service_account,
)
from daemon.service.unit import (
    UNIT_NAME,
    WORKER_UNIT_NAME,
    UnitSpec,
    enable_command,
    install_unit,
    render_unit,
)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``run`` and ``service``."""
    run = sub.add_parser("run", parents=[common],
                         help="run the daemon in the foreground until SIGTERM",
                         description="Watch inbox/ and outbox/requests/, ingest kits and "
                         "render prompts until SIGTERM. SIGHUP reloads config and rules.")
    run.set_defaults(handler=cmd_run)
    service = sub.add_parser("service", parents=[common],
                             help="print or install the systemd unit",
                             description="Print or install a hardened Type=notify unit. A "
                             "system unit runs as a dedicated account; install (as root) "
                             "adds it when missing and gives it inbox, library and requests.")
    service.add_argument("action", choices=("print", "install"))
    service.add_argument("--user", action="store_true", help="a user unit (~/.config)")
    service.add_argument("--user-name", default=DEFAULT_USER, type=_user_name, metavar="NAME",
                         help=f"account a system unit runs as (default: {DEFAULT_USER})")
    service.add_argument("--worker", action="store_true",
                         help=f"the unit of a cluster worker (traum worker, {WORKER_UNIT_NAME})")
    service.set_defaults(handler=cmd_service)


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.service.daemon import run_daemon

    return run_daemon(Path(args.config) if args.config else None, open_work=open_work,
                      debug=args.debug)


def open_work(config: Config):
    """The daemon's `Work`: the engine, which ingests and renders in-process, or with a
    ``[cluster] database_url`` the cluster's dispatcher, which queues both for `traum
    worker`s. The one place the choice is made; one machine never imports the cluster."""
    if not config.cluster.enabled:
        from daemon.work import Engine

        return Engine(config)
    from daemon.cluster.dispatch import ClusterWork

    return ClusterWork(config)


def cmd_service(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.action == "print":
        account = None if args.user else service_account(args.user_name)
        print(_unit_text(config, account, worker=args.worker), end="")
        return EXIT_OK
    paths = config.paths
    ensure_folders(paths)  # systemd refuses ReadWritePaths= that do not exist
    account = None
    if not args.user:
        account, added = ensure_account(args.user_name, home=paths.library)
        hand_over(account, owned=(paths.inbox, paths.library, paths.requests),
                  drop=(paths.inbox, paths.requests))
        print(f"{'added' if added else 'using'} account {account.user}; it owns "
              f"{paths.inbox}, {paths.library} and {paths.requests}\n"
              f"to drop kits and prompts as yourself: usermod -aG {account.group} YOUR_NAME")
    name = WORKER_UNIT_NAME if args.worker else UNIT_NAME
    path = install_unit(user=args.user, text=_unit_text(config, account, worker=args.worker),
                        name=name)
    print(f"installed {path}\nenable it with: {enable_command(user=args.user, name=name)}")
    return EXIT_OK


def _unit_text(config: Config, account: Account | None, *, worker: bool) -> str:
    if worker and not config.cluster.enabled:
        raise ConfigError(f"{config_path(config)}: a worker unit needs [cluster] database_url")
    return render_unit(UnitSpec(
        exe=traum_executable(), config_path=config_path(config), paths=config.paths,
        account=account, stop_timeout=config.daemon.stop_timeout,
        gpu=config.embedding.device == "cuda", jit=config.embedding.backend == "clap",
        worker=worker))


def _user_name(value: str) -> str:
    try:
        return check_user_name(value)
    except TraumError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
