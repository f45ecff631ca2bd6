"""What `traum status` reports: the library's counts, pending and running work, quarantine,
the last errors and leftovers past `daemon.keep_days`. The JSON keys are a stable interface."""

from __future__ import annotations

import time

from daemon.config import Config
from daemon.folders import expired_leftovers, scan_inbox, scan_requests
from daemon.store import queries


def collect_status(config: Config, *, in_progress: dict[str, str] | None = None) -> dict:
    """Everything `traum status` reports; the JSON keys are a stable interface."""
    stats = queries.library_stats()
    now = time.time()
    quarantine = config.paths.quarantine
    quarantined = (sum(1 for p in quarantine.rglob("*.reason.txt"))
                   if quarantine.is_dir() else 0)
    return {
        "stems": stats["stems"], "kits": stats["kits"], "by_category": stats["by_category"],
        "kits_by_status": stats["kits_by_status"], "journal": stats["journal"],
        "renders": stats["renders"], "quarantined": quarantined,
        "pending": {"inbox": [p.name for p in scan_inbox(config.paths.inbox)],
                    "requests": [p.name for p in scan_requests(config.paths.requests)]},
        "in_progress": in_progress or {}, "last_errors": queries.last_errors(),
        "expired": [{"path": str(item.path), "days": round(item.age_days(now), 1)}
                    for item in expired_leftovers(config.paths, keep_days=config.daemon.keep_days,
                                                  now=now)],
        "library": str(config.paths.library), "checked_at": now,
        **({"cluster": _cluster_status(config, now)} if config.cluster.enabled else {}),
    }


def _cluster_status(config: Config, now: float) -> dict:
    """The cluster's workers (lanes, heartbeat age, alive or stale: silent longer than a
    claim lasts, so its work is being taken over) and the jobs per lane's queue."""
    from daemon.store import cluster

    workers = [{"name": worker.name, "host": worker.host, "pid": worker.pid,
                "lanes": list(worker.lanes), "schema_version": worker.schema_version,
                "heartbeat_age": round(now - worker.heartbeat_at, 1),
                "alive": now - worker.heartbeat_at <= config.cluster.claim_seconds}
               for worker in cluster.list_workers()]
    return {"workers": workers, "queues": cluster.queue_depths()}
