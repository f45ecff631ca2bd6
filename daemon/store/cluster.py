"""The cluster's bookkeeping in the library database: claims, worker rows, queue depth, and
a lock for work that one machine at a time should do.

A claim makes an effect happen once however often its task is delivered: a worker takes an
item (an inbox entry, a prompt) with one atomic ``UPDATE ... WHERE claimed_by IS NULL OR
claimed_until < now RETURNING``, renews every claim it holds with its heartbeat, and gives
the item back when done, leaving a `done_mark` of what it finished. A worker killed mid-task
renews nothing: its claims expire and the next delivery takes them over. Times are epoch
seconds of the worker's clock (the machines keep theirs in step, e.g. with NTP; claims last
minutes, far above any such skew).

Kept apart from `queries` because only ``[cluster]`` uses it (code that runs on both
databases asks `library_on_server` first); like `queries`, rows leave as records or plain
values.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from daemon.store.dialect import is_sqlite
from daemon.store.models import Claim, WorkerRow, database


@dataclass(frozen=True)
class ClaimRecord:
    """A claim as taken: the item, its holder, and the mark of what was last finished."""

    lane: str
    item: str
    holder: str
    done_mark: str


@dataclass(frozen=True)
class WorkerRecord:
    name: str
    host: str
    pid: int
    lanes: tuple[str, ...]
    schema_version: int
    started_at: float
    heartbeat_at: float


def take_claim(lane: str, item: str, *, holder: str, seconds: float,
               now: float | None = None) -> ClaimRecord | None:
    """Claim `item` of `lane` for `holder` until `seconds` from now; None when another
    holder's claim has not expired yet. A holder may take its own claim again."""
    now = time.time() if now is None else now
    with database.atomic():
        Claim.insert(lane=lane, item=item, updated_at=now).on_conflict_ignore().execute()
        taken = list(Claim.update(claimed_by=holder, claimed_until=now + seconds,
                                  updated_at=now)
                     .where((Claim.lane == lane) & (Claim.item == item)
                            & (Claim.claimed_by.is_null() | (Claim.claimed_until < now)
                               | (Claim.claimed_by == holder)))
                     .returning(Claim.done_mark).execute())
    if not taken:
        return None
    return ClaimRecord(lane=lane, item=item, holder=holder, done_mark=taken[0].done_mark)


def claim_holder(lane: str, item: str) -> tuple[str, float] | None:
    """Who holds `item` of `lane` and until when; None while nobody does."""
    row = Claim.get_or_none((Claim.lane == lane) & (Claim.item == item)
                            & Claim.claimed_by.is_null(False))
    return None if row is None else (row.claimed_by, row.claimed_until)


def renew_claims(holder: str, *, seconds: float, now: float | None = None) -> int:
    """Push every claim of `holder` to `seconds` from now (its heartbeat); return how many."""
    now = time.time() if now is None else now
    with database.atomic():
        return (Claim.update(claimed_until=now + seconds, updated_at=now)
                .where(Claim.claimed_by == holder).execute())


def release_claim(claim: ClaimRecord, *, done_mark: str | None = None) -> bool:
    """Give `claim` back, recording `done_mark` when given; False when it was no longer
    ours (it expired and another worker took it over)."""
    changes = {"claimed_by": None, "claimed_until": None, "updated_at": time.time()}
    if done_mark is not None:
        changes["done_mark"] = done_mark
    with database.atomic():
        return bool(Claim.update(**changes)
                    .where((Claim.lane == claim.lane) & (Claim.item == claim.item)
                           & (Claim.claimed_by == claim.holder)).execute())


def register_worker(record: WorkerRecord) -> None:
    """Add (or replace) the row of a starting worker."""
    with database.atomic():
        (WorkerRow.insert(name=record.name, host=record.host, pid=record.pid,
                          lanes=",".join(record.lanes), schema_version=record.schema_version,
                          started_at=record.started_at, heartbeat_at=record.heartbeat_at)
         .on_conflict(conflict_target=[WorkerRow.name],
                      preserve=[WorkerRow.host, WorkerRow.pid, WorkerRow.lanes,
                                WorkerRow.schema_version, WorkerRow.started_at,
                                WorkerRow.heartbeat_at])
         .execute())


def beat_worker(name: str, *, now: float | None = None) -> bool:
    """Record a heartbeat of worker `name`; False when its row is gone (pruned as stale)."""
    with database.atomic():
        return bool(WorkerRow.update(heartbeat_at=time.time() if now is None else now)
                    .where(WorkerRow.name == name).execute())


def remove_worker(name: str) -> None:
    """Drop the row of a worker that stops."""
    with database.atomic():
        WorkerRow.delete().where(WorkerRow.name == name).execute()


def list_workers() -> list[WorkerRecord]:
    """Every worker row, by name."""
    return [WorkerRecord(name=row.name, host=row.host, pid=row.pid,
                         lanes=tuple(lane for lane in row.lanes.split(",") if lane),
                         schema_version=row.schema_version, started_at=row.started_at,
                         heartbeat_at=row.heartbeat_at)
            for row in WorkerRow.select().order_by(WorkerRow.name)]


def queue_depths() -> dict[str, dict[str, int]]:
    """Jobs waiting (``todo``) and running (``doing``) per queue in procrastinate's job
    table; empty when the task engine's schema is not installed yet."""
    present = database.execute_sql("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
    if present is None:
        return {}
    rows = database.execute_sql(
        "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
        "WHERE status IN ('todo', 'doing') GROUP BY queue_name, status")
    depths: dict[str, dict[str, int]] = {}
    for queue, status, count in rows.fetchall():
        depths.setdefault(queue, {"todo": 0, "doing": 0})[status] = int(count)
    return depths


def library_on_server() -> bool:
    """True when the bound library database is a PostgreSQL server (``[cluster]``), False
    for the single machine's stems.db."""
    return not is_sqlite(database.obj)


@contextlib.contextmanager
def try_server_lock(name: str) -> Iterator[bool]:
    """Take the server's advisory lock `name` for this thread's connection unless another
    session holds it, without waiting: yield True while it is held, False when it is taken.
    PostgreSQL only.

    A session lock, not a transaction's: the work under it may last minutes and must not
    hold a transaction open that long. It is released when the block ends, an exception
    too; a connection lost meanwhile took the lock with it.
    """
    key = _lock_key(name)
    taken = database.execute_sql(f"SELECT pg_try_advisory_lock({database.param})",
                                 (key,)).fetchone()[0]
    if not taken:
        yield False
        return
    try:
        yield True
    finally:
        database.execute_sql(f"SELECT pg_advisory_unlock({database.param})", (key,))


def _lock_key(name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
