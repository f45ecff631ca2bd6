"""Small real libraries for the backup and doctor tests: a migrated stems.db (written with
plain sqlite3, so no test binds the engine's models), stem rows with their files, and the
ways a database file gets damaged on a real disk."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from peewee import SqliteDatabase

from daemon.config import Paths, ensure_folders
from daemon.store import schema

PAGE = 4096  # SQLite's default page size


@contextlib.contextmanager
def writing(database: Path) -> Iterator[sqlite3.Connection]:
    """A connection that commits and closes (the last close checkpoints the WAL)."""
    db = sqlite3.connect(database)
    try:
        with db:
            yield db
    finally:
        db.close()


def make_library(root: Path) -> Paths:
    """Folders under `root` and an empty stems.db at the newest schema, in WAL mode."""
    paths = Paths(inbox=root / "inbox", library=root / "library",
                  requests=root / "outbox" / "requests", rules=root / "rules")
    ensure_folders(paths)
    db = SqliteDatabase(str(paths.database), pragmas={"journal_mode": "wal"})
    db.connect()
    schema.migrate(db)
    db.close()
    return paths


def add_kit(paths: Paths, name: str, *, status: str = "complete") -> int:
    with writing(paths.database) as db:
        return db.execute("INSERT INTO kit (name, source_kind, status, added_at, source_name) "
                          "VALUES (?, 'folder', ?, ?, ?)",
                          (name, status, time.time(), name)).lastrowid


def add_stem(paths: Paths, kit_id: int, kit: str, rel_path: str, *, size: int = 64) -> int:
    """A stored stem: its file under stems/<kit>/ and its row, journalled as `stored`."""
    with writing(paths.database) as db:
        return _insert_stem(db, paths, kit_id, kit, rel_path, size=size)


def _insert_stem(db: sqlite3.Connection, paths: Paths, kit_id: int, kit: str, rel_path: str,
                 *, size: int) -> int:
    stored = f"stems/{kit}/{rel_path}"
    (paths.library / stored).parent.mkdir(parents=True, exist_ok=True)
    (paths.library / stored).write_bytes(os.urandom(size))
    stem_id = db.execute(
        "INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, category, "
        "category_confidence, category_source, kind, bpm_confidence, bpm_source, "
        "key_confidence, key_source, duration, sample_rate, channels, peak_db, rms_db, "
        "crest_db, tags, embedding, added_at) VALUES (?, ?, ?, ?, 'kick', 1, 'name', "
        "'oneshot', 0, 'none', 0, 'none', 0.5, 44100, 2, -1, -12, 11, '[]', ?, ?)",
        (kit_id, rel_path, stored, os.urandom(16).hex(), os.urandom(size),
         time.time())).lastrowid
    db.execute("INSERT INTO ingestitem (kit_id, rel_path, state, stem_id, updated_at) "
               "VALUES (?, ?, 'stored', ?, ?)", (kit_id, rel_path, stem_id, time.time()))
    return stem_id


def fill_library(paths: Paths, *, stems: int = 300) -> list[int]:
    """One complete kit of `stems` stems with 2 KiB embeddings: a database of many pages."""
    kit = add_kit(paths, "Big Kit")
    with writing(paths.database) as db:  # one transaction: hundreds of fsyncs are slow
        return [_insert_stem(db, paths, kit, "Big Kit", f"Loops/loop_{n:04d}.wav", size=2048)
                for n in range(stems)]


def stem_count(database: Path) -> int:
    with writing(database) as db:
        return db.execute("SELECT count(*) FROM stem").fetchone()[0]


def truncate(database: Path, *, keep: float = 0.6) -> None:
    """Cut the file short at a page boundary, as a full disk or a lost write leaves it."""
    size = database.stat().st_size
    os.truncate(database, max(PAGE, int(size * keep) // PAGE * PAGE))


def scribble(database: Path, *, first_page: int = 3, pages: int = 4) -> None:
    """Overwrite whole pages in the middle with random bytes (bad sectors, a stray write)."""
    with open(database, "r+b") as handle:
        handle.seek((first_page - 1) * PAGE)
        handle.write(os.urandom(pages * PAGE))


def garble_header(database: Path) -> None:
    """Destroy the 100-byte header: the file is no longer recognisable as SQLite."""
    with open(database, "r+b") as handle:
        handle.write(os.urandom(100))
