"""Typed errors. Every error raised on purpose by Traum-Engine derives from `TraumError`.

The CLI maps them to exit codes: `ConfigError` and `RuleError` exit 3, all others exit 1.
Stages raise these chained with ``from exc``; one boundary per work item catches them.
"""

from __future__ import annotations

from pathlib import Path


class TraumError(Exception):
    """Base class of every deliberate Traum-Engine error."""


class ConfigError(TraumError):
    """config.toml is unreadable or invalid; the message lists every bad key."""


class RuleError(TraumError):
    """A file in rules/ is unreadable or invalid; the message names file and key."""


class StoreError(TraumError):
    """The library database cannot be opened, migrated or written."""


class IngestError(TraumError):
    """A file or kit cannot be ingested. ``path`` names it, ``reason`` is a short slug."""

    def __init__(self, path: Path | str, reason: str, detail: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        text = f"{self.path}: {reason}"
        super().__init__(f"{text}: {detail}" if detail else text)


class AnalysisError(TraumError):
    """Audio could not be analysed (silent, NaN/Inf, too short...)."""


class PlanError(TraumError):
    """A prompt cannot be turned into a plan, or a plan JSON is malformed."""


class RenderError(TraumError):
    """A plan cannot be rendered (no usable stems, conform failure, write failure)."""


class EmbeddingError(TraumError):
    """An embedding backend is unavailable or misconfigured; the message says what to do."""


class StorageFault(StoreError):
    """The machine, not the input, stops the work: a full disk, a read-only or forbidden
    folder, a locked or damaged database, a stored file deleted by hand.

    Retrying the same item later can succeed once the fault is cleared, so the daemon
    pauses (``scope`` "lane": every item would fail alike) or holds the one item
    (``scope`` "item") and retries with backoff. Built by `daemon.faults.storage_fault`.

    Attributes
    ----------
    what
        The fault in a few words, for ``STATUS=`` and `traum status`: "library disk full
        (12 MB free)".
    where
        The folder or file at fault, or the URL of a database server (password masked).
    advice
        What the user can do about it.
    cause
        A stable slug: ``disk-full``, ``read-only``, ``permission``, ``locked``,
        ``damaged``, ``missing``, ``io`` or ``unreachable`` (a database server).
    scope
        ``lane`` or ``item``.
    """

    def __init__(self, what: str, *, where: Path | str, advice: str, cause: str,
                 scope: str = "lane") -> None:
        # A URL stays text: Path() would fold its "//".
        self.where = where if isinstance(where, str) and "://" in where else Path(where)
        self.what, self.advice = what, advice
        self.cause, self.scope = cause, scope
        super().__init__(f"{what} at {where}: {advice}")
