"""The procrastinate app of a cluster, its schema, and handing an item to a lane's queue.

One queue per lane (``ingest``, ``render``); a job's argument is the item's name relative
to its folder (an inbox entry, a prompt file under the requests folder), which every machine
mounts at the same path. A queueing lock per item keeps at most one job of it waiting, so
the watcher's rescans never pile up copies; a copy queued while one runs does nothing (its
claim is held, or the work is done).
"""

from __future__ import annotations

import logging

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.schema import SchemaManager

from daemon.config import mask_password
from daemon.errors import StoreError
from daemon.faults import server_faults

log = logging.getLogger("traum.cluster")

LANES = ("ingest", "render")
_NAMESPACE = "traum"
CONNECT_TIMEOUT_S = 10  # an unreachable server fails in seconds, not after the TCP timeout
POOL_WAIT_S = 15.0  # a job fetch or a defer waits this long for a connection, then fails
# Key of the advisory lock under which the first process to start installs the schema.
_SCHEMA_LOCK = 0x7472_6175_6D_71  # "traumq"


def build_app(url: str, *, connections: int = 2) -> App:
    """The app on the server at `url` (not opened), with the cluster's tasks registered
    as ``traum:ingest`` and ``traum:render``; its pool holds up to `connections`."""
    from daemon.cluster.tasks import build_blueprint

    # The pool logs every failed reconnect during an outage; the lane's pause line says it
    # once, naming the server.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    connector = PsycopgConnector(conninfo=url, min_size=1, max_size=connections,
                                 timeout=POOL_WAIT_S,
                                 kwargs={"connect_timeout": CONNECT_TIMEOUT_S})
    app = App(connector=connector)
    app.add_tasks_from(build_blueprint(), namespace=_NAMESPACE)
    return app


def install_schema(url: str) -> bool:
    """Install procrastinate's tables and functions unless they are there; True when this
    call installed them. Safe when many machines start at once (an advisory lock).

    Raises `StorageFault` when the server cannot be reached, else `StoreError`; both name
    the URL with its password masked.
    """
    try:
        with server_faults(url), psycopg.connect(
                url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]:
                return False
            conn.execute(SchemaManager.get_schema())
    except psycopg.Error as exc:  # a lost server left as a StorageFault already
        raise StoreError(f"{mask_password(url)}: cannot install the task queue: "
                         f"{str(exc).strip().splitlines()[0]}") from exc
    log.info("task queue installed in %s", mask_password(url))
    return True


def enqueue(app: App, lane: str, item: str) -> bool:
    """Queue the job of `item` on `lane`; False when one is already waiting for it.
    A lost server raises (the watcher's lane holds the item and retries)."""
    task = app.tasks[f"{_NAMESPACE}:{lane}"]
    try:
        task.configure(queueing_lock=f"{lane}:{item}").defer(item=item)
    except AlreadyEnqueued:
        return False
    return True
