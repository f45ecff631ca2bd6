"""config.toml → frozen, validated settings.

Discovery order: an explicit path (``--config``), then ``$TRAUM_CONFIG``, then
``./config.toml``; with none of them present the built-in defaults apply relative to the
current folder. Relative paths resolve against the config file's folder. Every problem in
the file is reported at once in one `ConfigError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import ConfigError
from daemon.tomlcheck import Checker, read_toml


@dataclass(frozen=True)
class Paths:
    """Folders the engine reads and writes. Created on first use by `ensure_folders`."""

    inbox: Path
    library: Path
    requests: Path
    rules: Path

    @property
    def database(self) -> Path:
        return self.library / "stems.db"

    @property
    def stems(self) -> Path:
        return self.library / "stems"

    @property
    def quarantine(self) -> Path:
        return self.library / "quarantine"

    @property
    def cache(self) -> Path:
        return self.library / "cache"

    @property
    def staging(self) -> Path:
        return self.library / "staging"


@dataclass(frozen=True)
class IngestSettings:
    workers: int  # 0 means one per core
    settle_seconds: float
    max_entries: int
    max_entry_bytes: int
    max_total_bytes: int
    max_ratio: float


@dataclass(frozen=True)
class RenderSettings:
    sample_rate: int
    bit_depth: int
    target_lufs: float
    true_peak_db: float
    max_stretch: float  # largest allowed |1 - stretch ratio| for a loop
    max_semitones: int
    sidechain: bool
    exports: tuple[str, ...]  # optional outputs beside the WAV and JSON; see EXPORTS
    cache_max_mb: int  # the conform cache is pruned least-recently-used to this size


@dataclass(frozen=True)
class EmbeddingSettings:
    backend: str  # "features" or "clap"
    clap_checkpoint: Path | None
    batch_size: int
    device: str  # "auto", "cpu" or "cuda"


@dataclass(frozen=True)
class DaemonSettings:
    polling: bool
    rescan_seconds: float
    stop_timeout: float
    retries: int
    retry_backoff_seconds: float
    log_level: str
    backups: int  # daily copies of stems.db kept under library/backups/
    keep_days: int  # quarantine and error files older than this are due for `traum gc`


@dataclass(frozen=True)
class ClusterSettings:
    """The shared library of many machines ("Scaling out" in the README); off by default."""

    database_url: str  # "" = the embedded SQLite stems.db; else postgresql://user:pw@host/db
    claim_seconds: float  # a claim on a kit file or prompt expires this long after its heartbeat
    heartbeat_seconds: float  # how often a worker renews its claims and its row in `traum status`

    @property
    def enabled(self) -> bool:
        return bool(self.database_url)


@dataclass(frozen=True)
class Config:
    source: Path | None
    paths: Paths
    ingest: IngestSettings
    render: RenderSettings
    embedding: EmbeddingSettings
    daemon: DaemonSettings
    cluster: ClusterSettings = ClusterSettings("", 120.0, 10.0)


#: Outputs a render may write besides the WAV and the JSON report, which are always written.
EXPORTS = ("png", "lanes", "midi", "dawproject")
DEFAULT_EXPORTS = ("png",)

_SECTIONS = ("paths", "ingest", "render", "embedding", "daemon", "cluster")
_MB = 1024 * 1024


def find_config(explicit: str | Path | None = None) -> Path | None:
    """Return the config file to use, or None for built-in defaults.

    An explicit path or ``$TRAUM_CONFIG`` that does not exist is an error, not a fallback.
    """
    for candidate in (explicit, os.environ.get("TRAUM_CONFIG")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            return path.resolve()
    local = Path("config.toml")
    return local.resolve() if local.is_file() else None


def load_config(explicit: str | Path | None = None) -> Config:
    """Find, read and validate the configuration; raise `ConfigError` listing every problem."""
    path = find_config(explicit)
    data = read_toml(path, ConfigError) if path else {}
    base = path.parent if path else Path.cwd()
    return parse_config(data, base=base, source=path)


def parse_config(data: dict[str, Any], *, base: Path, source: Path | None = None) -> Config:
    """Validate a parsed TOML document; relative paths resolve against `base`."""
    check = Checker(source.name if source else "config.toml")
    root = check.table(data, "", _SECTIONS)
    sections = {name: check.table(root.get(name, {}), name, _ALLOWED[name]) for name in _SECTIONS}
    config = Config(
        source=source,
        paths=_paths(check, sections["paths"], base),
        ingest=_ingest(check, sections["ingest"]),
        render=_render(check, sections["render"]),
        embedding=_embedding(check, sections["embedding"], base),
        daemon=_daemon(check, sections["daemon"]),
        cluster=_cluster(check, sections["cluster"]),
    )
    check.raise_if_any(ConfigError)
    return config


def ensure_folders(paths: Paths) -> None:
    """Create every folder the engine writes to (first use)."""
    for folder in (paths.inbox, paths.library, paths.requests, paths.stems,
                   paths.quarantine, paths.cache, paths.staging):
        folder.mkdir(parents=True, exist_ok=True)


_ALLOWED = {
    "cluster": ("database_url", "claim_seconds", "heartbeat_seconds"),
    "paths": ("inbox", "library", "requests", "rules"),
    "ingest": ("workers", "settle_seconds", "max_entries", "max_entry_mb", "max_total_mb",
               "max_ratio"),
    "render": ("sample_rate", "bit_depth", "target_lufs", "true_peak_db", "max_stretch",
               "max_semitones", "sidechain", "exports", "cache_max_mb"),
    "embedding": ("backend", "clap_checkpoint", "batch_size", "device"),
    "daemon": ("polling", "rescan_seconds", "stop_timeout", "retries", "retry_backoff_seconds",
               "log_level", "backups", "keep_days"),
}


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _paths(check: Checker, data: dict, base: Path) -> Paths:
    def folder(name: str, default: str) -> Path:
        return _resolve(base, check.text(data, "paths", name, default) or default)

    return Paths(inbox=folder("inbox", "inbox"), library=folder("library", "library"),
                 requests=folder("requests", "outbox/requests"), rules=folder("rules", "rules"))


def _ingest(check: Checker, data: dict) -> IngestSettings:
    return IngestSettings(
        workers=check.number(data, "ingest", "workers", 0, low=0, high=64, integer=True),
        settle_seconds=check.number(data, "ingest", "settle_seconds", 2.0, low=0.1, high=3600),
        max_entries=check.number(data, "ingest", "max_entries", 5000, low=1, high=1_000_000,
                                 integer=True),
        max_entry_bytes=int(check.number(data, "ingest", "max_entry_mb", 512, low=1,
                                         high=65536) * _MB),
        max_total_bytes=int(check.number(data, "ingest", "max_total_mb", 8192, low=1,
                                         high=1_048_576) * _MB),
        max_ratio=check.number(data, "ingest", "max_ratio", 200.0, low=1, high=10_000),
    )


def _render(check: Checker, data: dict) -> RenderSettings:
    sample_rate = check.number(data, "render", "sample_rate", 44100, integer=True)
    if sample_rate not in (44100, 48000):
        check.problem("render.sample_rate", f"must be 44100 or 48000 (got {sample_rate})")
    bit_depth = check.number(data, "render", "bit_depth", 24, integer=True)
    if bit_depth not in (16, 24, 32):
        check.problem("render.bit_depth", f"must be 16, 24 or 32 (got {bit_depth})")
    return RenderSettings(
        sample_rate=sample_rate,
        bit_depth=bit_depth,
        target_lufs=check.number(data, "render", "target_lufs", -14.0, low=-30, high=-5),
        true_peak_db=check.number(data, "render", "true_peak_db", -1.0, low=-9, high=0),
        max_stretch=check.number(data, "render", "max_stretch", 0.25, low=0.0, high=0.5),
        max_semitones=check.number(data, "render", "max_semitones", 3, low=0, high=12,
                                   integer=True),
        sidechain=check.boolean(data, "render", "sidechain", True),
        exports=_exports(check, data),
        cache_max_mb=check.number(data, "render", "cache_max_mb", 2048, low=16,
                                  high=1_048_576, integer=True),
    )


def parse_exports(text: str, *, where: str) -> tuple[str, ...]:
    """A comma-separated export list (``--export dawproject,midi``) → the optional exports in
    writing order; `ConfigError` naming `where` for an unknown name."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    problem = _unknown_exports(names)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return tuple(name for name in EXPORTS if name in names)


def _exports(check: Checker, data: dict) -> tuple[str, ...]:
    # "wav" and "json" are always written; listing them is allowed and changes nothing.
    names = check.strings(data, "render", "exports", ("wav", "json", *DEFAULT_EXPORTS))
    problem = _unknown_exports(names)
    if problem:
        check.problem("render.exports", problem)
    return tuple(name for name in EXPORTS if name in names)


def _unknown_exports(names: Sequence[str]) -> str:
    """What is wrong with an export list ("" when nothing is)."""
    unknown = [name for name in names if name not in (*EXPORTS, "wav", "json")]
    return (f"unknown export {', '.join(map(repr, unknown))} (choose from wav, json, "
            f"{', '.join(EXPORTS)})") if unknown else ""


def _embedding(check: Checker, data: dict, base: Path) -> EmbeddingSettings:
    checkpoint = check.text(data, "embedding", "clap_checkpoint", "")
    return EmbeddingSettings(
        backend=check.text(data, "embedding", "backend", "features", choices=("features", "clap")),
        clap_checkpoint=_resolve(base, checkpoint) if checkpoint else None,
        batch_size=check.number(data, "embedding", "batch_size", 16, low=1, high=1024,
                                integer=True),
        device=check.text(data, "embedding", "device", "auto", choices=("auto", "cpu", "cuda")),
    )


def _daemon(check: Checker, data: dict) -> DaemonSettings:
    return DaemonSettings(
        polling=check.boolean(data, "daemon", "polling", False),
        rescan_seconds=check.number(data, "daemon", "rescan_seconds", 300.0, low=1, high=86400),
        stop_timeout=check.number(data, "daemon", "stop_timeout", 20.0, low=1, high=600),
        retries=check.number(data, "daemon", "retries", 2, low=0, high=10, integer=True),
        retry_backoff_seconds=check.number(data, "daemon", "retry_backoff_seconds", 5.0,
                                           low=0, high=3600),
        log_level=check.text(data, "daemon", "log_level", "INFO",
                             choices=("DEBUG", "INFO", "WARNING", "ERROR")),
        backups=check.number(data, "daemon", "backups", 7, low=1, high=365, integer=True),
        keep_days=check.number(data, "daemon", "keep_days", 30, low=1, high=3650, integer=True),
    )


def _cluster(check: Checker, data: dict) -> ClusterSettings:
    url = check.text(data, "cluster", "database_url", "")
    if url and not url.startswith(("postgresql://", "postgres://")):
        check.problem("cluster.database_url", f"{mask_password(url)} is not a postgresql:// URL")
    heartbeat = check.number(data, "cluster", "heartbeat_seconds", 10.0, low=0.2, high=600)
    claim = check.number(data, "cluster", "claim_seconds", 120.0, low=1, high=86400)
    if claim <= 2 * heartbeat:
        check.problem("cluster.claim_seconds", "must be more than twice heartbeat_seconds")
    return ClusterSettings(database_url=url, claim_seconds=claim, heartbeat_seconds=heartbeat)


def mask_password(url: str) -> str:
    """`url` with its password replaced by ``***``, fit for messages and logs."""
    return re.sub(r"^([a-z0-9+]+://[^:/@]+):[^@]*@", r"\1:***@", url)
