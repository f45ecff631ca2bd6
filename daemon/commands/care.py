"""`traum backup` and `traum doctor`: copies of the library database, checks and repairs.

Restoring, step by step: stop the daemon (``systemctl stop traum-engine``), run
``traum doctor --restore`` (the newest sound backup in library/backups/, or ``--restore
FILE``), then ``traum doctor --fix`` for what changed since that backup, and start the
daemon again. The replaced file stays beside the new one as ``stems.db.damaged-STAMP``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from daemon.commands.common import EXIT_FAILURE, EXIT_OK
from daemon.config import Paths, load_config
from daemon.errors import TraumError
from daemon.store.backup import (
    backup_folder,
    backup_name,
    list_backups,
    require_sqlite,
    restore_backup,
    take_backup,
    take_library_backup,
)
from daemon.store.doctor import describe, examine_library, repair_library

_LIVE_SECONDS = 60.0  # a daemon refreshes its status file every few seconds


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``backup`` and ``doctor``."""
    backup = sub.add_parser("backup", parents=[common], help="copy the library database",
                            description="Take an online, consistent copy of stems.db (the "
                            "daemon may keep running). Without PATH it goes to library/"
                            "backups/stems-YYYYmmdd-HHMMSS.db (UTC) and only the newest "
                            "daemon.backups copies are kept there.")
    backup.add_argument("path", nargs="?", type=Path, metavar="PATH",
                        help="where to write the copy (a file, or a folder to put it in)")
    backup.set_defaults(handler=cmd_backup)
    doctor = sub.add_parser("doctor", parents=[common], help="check and repair the library",
                            description="Check stems.db (PRAGMA integrity_check) and that "
                            "every stem row has its file and every file its row. Exit 0 "
                            "when healthy, 1 when problems remain.")
    doctor.add_argument("--fix", action="store_true",
                        help="remove rows whose file is gone; move files without a row to "
                        "quarantine/ (nothing is deleted)")
    doctor.add_argument("--restore", nargs="?", const="", type=str, metavar="BACKUP",
                        help="replace stems.db with BACKUP or the newest sound backup, "
                        "keeping the old file as stems.db.damaged-STAMP (stop the daemon "
                        "first)")
    doctor.set_defaults(handler=cmd_doctor)


def cmd_backup(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    require_sqlite(config.cluster, "backup")
    paths = config.paths
    if args.path is None:
        dest = take_library_backup(paths.library, keep=config.daemon.backups)
        kept = len(list_backups(paths.library))
        where = f" ({kept} kept in {backup_folder(paths.library)})"
    else:
        dest = args.path / backup_name() if args.path.is_dir() else args.path
        dest = take_backup(paths.database, dest)
        where = ""
    print(f"backed up {paths.database} to {dest}, {dest.stat().st_size / 2**20:.1f} MB{where}")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    require_sqlite(config.cluster, "doctor")
    paths = config.paths
    if args.restore is not None:
        _restore(paths, Path(args.restore) if args.restore else None)
    checkup = examine_library(paths)
    if args.fix and not checkup.healthy and not checkup.damaged:
        repairs = repair_library(paths, checkup)
        for gone in repairs.removed:
            print(f"removed stem {gone.stem_id}: {paths.library / gone.stored_path} was gone")
        for stored, dest in repairs.quarantined:
            print(f"moved {paths.library / stored} to {dest} (reason beside it)")
        checkup = examine_library(paths)
    for line in describe(checkup):
        print(line)
    return EXIT_OK if checkup.healthy else EXIT_FAILURE


def _restore(paths: Paths, backup: Path | None) -> None:
    pid = _running_daemon(paths.library)
    if pid is not None:
        raise TraumError(f"the daemon (pid {pid}) has {paths.database} open: stop it first "
                         "(systemctl stop traum-engine), then run traum doctor --restore")
    restored = restore_backup(paths.database, library=paths.library, backup=backup)
    kept = f"; the replaced file is kept as {restored.kept}" if restored.kept else ""
    print(f"restored {paths.database} from {restored.backup}{kept}")


def _running_daemon(library: Path) -> int | None:
    """The pid of a daemon that published its status for `library` lately, else None.

    A pid owned by another account (the service user) counts as running: signalling it
    is refused, not unknown.
    """
    from daemon.folders import status_file

    try:
        status = json.loads(status_file(library).read_text())
        pid, updated = int(status["pid"]), float(status["updated_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if time.time() - updated > _LIVE_SECONDS:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid
