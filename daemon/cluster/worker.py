"""`traum worker`: run the cluster's ingest and render jobs on this machine.

Life of the process::

    read the library's schema version (another release's is refused) → open the library
    (an empty one is migrated) → install the task queue if missing → register in the
    worker table → heartbeat thread (renews this worker's claims and row) → jobs of the
    chosen lanes (`serve`) ... SIGTERM → the running jobs finish → exit 0

The machine must mount the library and outbox at the paths the config names, like every
other machine of the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import psycopg

from daemon.cluster.app import CONNECT_TIMEOUT_S, build_app, install_schema
from daemon.cluster.serve import serve
from daemon.cluster.tasks import Runner
from daemon.config import ClusterSettings, Config, mask_password
from daemon.errors import ConfigError, StoreError
from daemon.faults import server_faults
from daemon.service.daemon import lane_policy
from daemon.store.cluster import (
    WorkerRecord,
    beat_worker,
    register_worker,
    remove_worker,
    renew_claims,
)
from daemon.store.schema import LATEST
from daemon.work import Engine

log = logging.getLogger("traum.worker")

_SPARE_CONNECTIONS = 4  # procrastinate's listener, job fetch, heartbeat and abort polling


def run_worker(config: Config, *, lanes: Sequence[str], concurrency: int) -> int:
    """Run jobs of `lanes` (at most `concurrency` at once) until SIGTERM; return 0.

    Raises `ConfigError` without a ``[cluster] database_url``, `StorageFault` when the
    server cannot be reached at start, `StoreError` when the library belongs to another
    release (`check_schema`); each message names the URL with its password masked.
    """
    cluster = config.cluster
    if not cluster.enabled:
        source = config.source or "config.toml"
        raise ConfigError(f"{source}: traum worker needs [cluster] database_url, the "
                          "PostgreSQL server the watcher (traum run) uses")
    check_schema(cluster.database_url)
    engine = Engine(config)
    install_schema(cluster.database_url)
    record = WorkerRecord(name=f"{socket.gethostname()}:{os.getpid()}",
                          host=socket.gethostname(), pid=os.getpid(), lanes=tuple(lanes),
                          schema_version=LATEST, started_at=time.time(),
                          heartbeat_at=time.time())
    register_worker(record)
    heartbeat = Heartbeat(record, cluster)
    heartbeat.start()
    log.info("worker %s: lanes %s, %d at once, library %s", record.name, ", ".join(lanes),
             concurrency, mask_password(cluster.database_url))
    runner = Runner(engine, holder=record.name, claim_seconds=cluster.claim_seconds,
                    policy=lane_policy(config))
    app = build_app(cluster.database_url, connections=concurrency + _SPARE_CONNECTIONS)
    options = {"queues": list(lanes), "concurrency": concurrency, "name": record.name,
               "install_signal_handlers": False, "delete_jobs": "successful",
               "update_heartbeat_interval": cluster.heartbeat_seconds,
               "stalled_worker_timeout": cluster.claim_seconds,
               "additional_context": {"runner": runner}}
    try:
        return asyncio.run(serve(app, url=cluster.database_url, options=options,
                                 stop_timeout=config.daemon.stop_timeout,
                                 backoff_seconds=config.daemon.retry_backoff_seconds,
                                 stalled_after=cluster.claim_seconds,
                                 check_every=cluster.heartbeat_seconds,
                                 on_stop=runner.stopping.set))
    finally:
        heartbeat.stop()
        heartbeat.leave()
        engine.close()


def check_schema(url: str) -> int:
    """The schema version of the library on the server at `url` (0 while it is empty).

    A worker runs only on a library of its own release: an older one is brought forward by
    the watcher's ``traum run`` (never by a worker, while other workers of the old release
    may still use it), a newer one needs this machine upgraded. Raises `StoreError` for
    either, `StorageFault` when the server cannot be reached.
    """
    masked = mask_password(url)
    try:
        with server_faults(url), psycopg.connect(
                url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
                return 0
            version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version"
                                   ).fetchone()[0]
    except psycopg.Error as exc:  # a lost server left as a StorageFault already
        raise StoreError(f"{masked}: cannot read the library's schema version: "
                         f"{str(exc).strip().splitlines()[0]}") from exc
    if version in (0, LATEST):
        return version
    what = ("upgrade Traum-Engine on this machine" if version > LATEST else
            "upgrade the watcher and run traum run once, which brings the library forward")
    raise StoreError(f"{masked}: the library is at schema v{version}, this worker runs "
                     f"v{LATEST}: refused; {what}")


class Heartbeat:
    """A thread that renews, every ``heartbeat_seconds``, the claims this worker holds and
    its row in the worker table (which `traum status` reads). While the server is away the
    beats fail (logged once) and resume with it; claims older than ``claim_seconds`` may
    meanwhile have been taken over, which the task notices when it gives its claim back."""

    def __init__(self, record: WorkerRecord, settings: ClusterSettings) -> None:
        self.record = record
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="traum-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.heartbeat_seconds + CONNECT_TIMEOUT_S)

    def leave(self) -> None:
        """Remove this worker's row; a lost server leaves it to go stale instead."""
        for attempt in range(2):  # the first use after an outage finds the dead connection
            try:
                remove_worker(self.record.name)
                return
            except Exception as exc:  # the server is away: the row shows as stale
                if attempt:
                    log.warning("worker row %s left behind (it shows as stale): %s",
                                self.record.name, exc)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                self.beat()
            except Exception as exc:  # the heartbeat's boundary: it must outlive an outage
                if not failing:
                    log.error("heartbeat failed, claims not renewed: %s", exc)
                failing = True
                continue
            if failing:
                log.info("heartbeat renewed again")
            failing = False

    def beat(self) -> None:
        renew_claims(self.record.name, seconds=self.settings.claim_seconds)
        if not beat_worker(self.record.name):  # pruned while the server was away
            register_worker(replace(self.record, heartbeat_at=time.time()))
