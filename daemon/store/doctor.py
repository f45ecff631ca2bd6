"""`traum doctor`: is the library database sound, and do its rows and the stem files agree?

`examine_library` runs ``PRAGMA integrity_check`` and ``foreign_key_check`` on stems.db, then
reconciles the ``stem`` rows with the files under ``library/stems``:

- a row whose file is gone (deleted by hand) can never be rendered again;
- a file with no row (left by a restore from an older backup, or copied in by hand) is
  invisible to every search.

`repair_library` (``--fix``) settles both the safe way: a row whose file is gone is deleted,
and the journal items that pointed to it become ``skipped`` with the reason, so a re-drop of
the kit ingests the file again; a file with no row is moved to ``library/quarantine/`` with a
``.reason.txt`` beside it, never deleted.

Files of kits still ingesting are left alone: the daemon copies a stem, then commits its
row, and the start-up reconciliation settles an interrupted kit. Everything here talks to
SQLite directly (the frozen schema of `daemon.store.schema`), so a damaged database is
examined without the models, and the daemon may keep running during ``--fix``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon import fsutil
from daemon.config import Paths
from daemon.errors import StoreError
from daemon.store.backup import database_problems, is_damage, match_owner, sqlite_connection

_ORPHAN_REASON = ("no row in stems.db: found by traum doctor (a stem ingested after the "
                  "backup a restore used, or a file copied in by hand); move it to the inbox "
                  "to ingest it again")


@dataclass(frozen=True)
class MissingFile:
    """A stem row whose file is gone."""

    stem_id: int
    stored_path: str  # relative to the library, as the row has it


@dataclass(frozen=True)
class Checkup:
    """What `examine_library` found. ``damaged`` lists integrity problems; when it is not
    empty the rows could not be trusted and were not reconciled."""

    database: Path
    damaged: tuple[str, ...] = ()
    missing: tuple[MissingFile, ...] = ()
    orphans: tuple[str, ...] = ()  # library-relative paths of files with no row
    stems: int = 0

    @property
    def healthy(self) -> bool:
        return not (self.damaged or self.missing or self.orphans)


@dataclass(frozen=True)
class Repairs:
    """What `repair_library` changed."""

    removed: tuple[MissingFile, ...]
    quarantined: tuple[tuple[str, Path], ...]  # (stored path, where it went)


def examine_library(paths: Paths) -> Checkup:
    """Check the database of `paths.library` and reconcile its rows with the stem files.

    Never writes. A missing database is sound while there is nothing it should describe
    (a new library); with stem files present it is reported as damaged. Raises `StoreError`
    when the database cannot be read at all (locked, no permission): not a finding.
    """
    database = paths.database
    files = _stem_files(paths)  # listed before the rows are read: see `_orphans`
    if not database.exists():
        damaged = (f"{database}: no such file",) if files else ()
        return Checkup(database=database, damaged=damaged)
    problems = database_problems(database)
    if problems:
        return Checkup(database=database, damaged=tuple(problems))
    try:
        with sqlite_connection(database) as db:
            rows = db.execute("SELECT id, stored_path FROM stem ORDER BY id").fetchall()
            busy = _ingesting_kits(db)
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise StoreError(f"{database}: cannot read the library database: {exc}") from exc
        return Checkup(database=database, damaged=(str(exc),))
    missing = tuple(MissingFile(stem_id, stored) for stem_id, stored in rows
                    if not (paths.library / stored).is_file())
    stored = {path for _, path in rows}
    return Checkup(database=database, missing=missing, stems=len(rows),
                   orphans=_orphans(files, stored, busy))


def repair_library(paths: Paths, checkup: Checkup) -> Repairs:
    """Delete the rows of `checkup.missing` and quarantine `checkup.orphans`.

    Each finding is checked again first (the file may be back, a row may have been
    committed since), so running it beside the daemon is safe. Raises `StoreError` for a
    damaged database (nothing is changed then).
    """
    if checkup.damaged:
        raise StoreError(f"{checkup.database}: damaged; run traum doctor --restore first")
    try:
        removed = tuple(_remove_rows(paths, checkup.missing))
        quarantined = tuple(_quarantine_orphans(paths, checkup.orphans))
    except sqlite3.OperationalError as exc:  # locked beyond the wait, read-only, disk full
        raise StoreError(f"{checkup.database}: cannot repair: {exc}") from exc
    return Repairs(removed=removed, quarantined=quarantined)


def describe(checkup: Checkup) -> list[str]:
    """One line per finding, each saying what `--fix` or `--restore` will do."""
    database = checkup.database
    if checkup.damaged:
        more = len(checkup.damaged) - 1
        detail = checkup.damaged[0] + (f", and {more} more problems" if more else "")
        return [f"{database}: damaged ({detail}); run traum doctor --restore"]
    lines = [f"{database.parent / gone.stored_path}: file missing (stem {gone.stem_id}); "
             "--fix removes the row" for gone in checkup.missing]
    lines += [f"{database.parent / stored}: no row in the database; --fix moves it to "
              "quarantine/" for stored in checkup.orphans]
    if not lines:
        lines.append(f"{database}: sound; {checkup.stems} stems, every file in place")
    return lines


def _stem_files(paths: Paths) -> list[str]:
    if not paths.stems.is_dir():
        return []
    return sorted(path.relative_to(paths.library).as_posix()
                  for path in paths.stems.rglob("*")
                  if path.is_file() and not path.name.endswith(fsutil.TEMP_SUFFIX))


def _orphans(files: list[str], stored: set[str], busy: set[str]) -> tuple[str, ...]:
    # The files were listed before the rows were read: a file copied by a running ingest
    # then either has its row by now or belongs to a kit still marked ingesting.
    return tuple(path for path in files
                 if path not in stored and path.split("/")[1] not in busy)


def _ingesting_kits(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM kit WHERE status = 'ingesting'")}


def _remove_rows(paths: Paths, missing: tuple[MissingFile, ...]) -> Iterator[MissingFile]:
    reason = "stored file was deleted by hand; traum doctor --fix removed stem {}"
    with sqlite_connection(paths.database, mode="rw") as db:
        for finding in missing:
            if (paths.library / finding.stored_path).is_file():
                continue  # put back since the checkup
            with db:  # one transaction per row: the journal and the stem change together
                db.execute("UPDATE ingestitem SET state = 'skipped', reason = ?, stem_id = NULL,"
                           " updated_at = ? WHERE stem_id = ?",
                           (reason.format(finding.stem_id), time.time(), finding.stem_id))
                gone = db.execute("DELETE FROM stem WHERE id = ? AND stored_path = ?",
                                  (finding.stem_id, finding.stored_path)).rowcount
            if gone:
                yield finding


def _quarantine_orphans(paths: Paths, orphans: tuple[str, ...]
                        ) -> Iterator[tuple[str, Path]]:
    with sqlite_connection(paths.database) as db:
        stored = {path for (path,) in db.execute("SELECT stored_path FROM stem")}
        busy = _ingesting_kits(db)
    for relative in _orphans(list(orphans), stored, busy):
        source = paths.library / relative
        if not source.is_file():
            continue
        dest = _free_name(paths.quarantine / Path(relative).relative_to("stems"))
        _make_folders(dest.parent, paths.library)
        reason = dest.with_name(dest.name + ".reason.txt")
        fsutil.write_text_atomic(reason, f"{relative}: {_ORPHAN_REASON}\n")
        match_owner(reason, paths.library)
        fsutil.move_atomic(source, dest)
        yield relative, dest


def _free_name(dest: Path) -> Path:
    """`dest`, or "name (2).wav", "name (3).wav"... when a quarantined file has it."""
    candidate, number = dest, 1
    while candidate.exists():
        number += 1
        candidate = dest.with_name(f"{dest.stem} ({number}){dest.suffix}")
    return candidate


def _make_folders(folder: Path, library: Path) -> None:
    """Create `folder` and its missing parents, owned like the library (under sudo)."""
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        match_owner(created, library)
