"""The watcher's side of a cluster: `traum run` settles drops as on one machine, then its
lanes queue each item for the workers instead of doing the work.

`ClusterWork` is the daemon's `Work` (`daemon.service.daemon.Work`) with ``[cluster]``:
the daemon, its lanes and their retry policy are unchanged; only what a lane's handler does
differs. A lost server while queueing is a `StorageFault`, so the lane pauses and resumes
like for a full disk. The watcher's rescans queue again what is still in the inbox or
unanswered: a job whose worker died is thereby never lost, and the queueing lock and the
claims keep the copies from doing anything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from daemon.cluster.app import build_app, enqueue, install_schema
from daemon.config import Config
from daemon.errors import ConfigError
from daemon.faults import server_faults
from daemon.work import Engine

log = logging.getLogger("traum.cluster")

# Who a lane's queued item waits for, as the watcher's log says it.
_WORKERS = {"ingest": "an ingest worker", "render": "a render worker"}


class ClusterWork:
    """Queue ingests and renders on the cluster's PostgreSQL; re-analysis, reload and status
    stay with an engine on the watcher's machine (it mounts the library too).

    Start-up reconciliation of the journal is left out on purpose: with workers running,
    a temp file or an unfinished kit in the library may be work in progress elsewhere, and
    the journal resumes killed work by itself.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine = Engine(config)  # opens (and migrates) the library on the server
        self.app = build_app(config.cluster.database_url)
        self.opened = False

    def reconcile(self) -> str:
        with server_faults(self.config.cluster.database_url):
            install_schema(self.config.cluster.database_url)
            if not self.opened:
                self.app.open()
                self.opened = True
        return "task queue ready"

    def reanalyse(self, *, stopping: Callable[[], bool]) -> object:
        return self.engine.reanalyse(stopping=stopping)

    def ingest(self, path: Path) -> bool:
        return self._queue("ingest", path.name)

    def render(self, prompt: Path) -> bool:
        return self._queue("render", prompt.relative_to(self.config.paths.requests).as_posix())

    def reload(self, config: Config) -> None:
        """Use `config` from the next item on; a different database needs a restart."""
        if config.cluster.database_url != self.config.cluster.database_url:
            raise ConfigError("config.toml: cluster.database_url: a change takes a restart "
                              "of traum run")
        self.engine.reload(config)
        self.config = config

    def status(self) -> dict:
        return self.engine.status()

    def close(self) -> None:
        if self.opened:
            self.app.close()
            self.opened = False
        self.engine.close()

    def _queue(self, lane: str, item: str) -> bool:
        """Queue `item` on `lane` and log so; False when a job for it was waiting already."""
        with server_faults(self.config.cluster.database_url):
            queued = enqueue(self.app, lane, item)
        worker = _WORKERS[lane]
        if queued:
            log.info("queued %s for %s", item, worker)
        else:
            log.info("%s already waiting for %s", item, worker)
        return queued
