"""The engine's folder protocol: what in inbox/ and outbox/requests/ is work, when a prompt
counts as answered, the status file a running daemon publishes in the library, and which
quarantined entries and error files are old enough for `traum gc`.

Shared by the service (watching, lanes, status) and by the engine and CLI (``traum ingest``
with no path, ``traum status``), so it sits below both. It maps names to entries and
reads timestamps; deciding what an entry contains is the ingest's job.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Paths
from daemon.errors import PlanError
from daemon.fsutil import TEMP_SUFFIX, remove_entry, write_text_atomic
from daemon.ingest.unpack import is_junk as is_ingest_junk

log = logging.getLogger("traum.folders")

PROMPT_SUFFIX = ".prompt"
REASON_SUFFIX = ".reason.txt"  # beside every quarantined file or kit
ERROR_SUFFIX = ".error.txt"  # beside a prompt that failed
_STATUS_BLOCK = 4096
_DAY = 86400.0
# Folders archivers and Windows leave at the top level (the ingest's own list covers files).
_JUNK_FOLDERS = frozenset({"__macosx", "$recycle.bin"})
# Browsers, copy tools and our own atomic writes use these names until they rename.
_PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", TEMP_SUFFIX)

Locate = Callable[[Path], "Path | None"]


def is_junk(name: str) -> bool:
    """True for top-level names that never trigger work: whatever the ingest skips as junk
    (dotfiles and ``._*``, OS metadata, documents, images, DAW projects), ``__MACOSX``,
    Office lock files (``~$*``) and partial downloads."""
    lowered = name.lower()
    return (name.startswith("~$") or lowered in _JUNK_FOLDERS
            or lowered.endswith(_PARTIAL_SUFFIXES) or is_ingest_junk(name))


def inbox_entry(inbox: Path, path: Path) -> Path | None:
    """Return the top-level inbox entry `path` belongs to, or None if it is junk or outside."""
    try:
        parts = path.relative_to(inbox).parts
    except ValueError:
        return None
    if not parts or is_junk(parts[0]):
        return None
    return inbox / parts[0]


def request_entry(requests: Path, path: Path) -> Path | None:
    """Return `path` if it is a ``NAME.prompt`` directly in the requests folder, else None.

    The daemon's own outputs (``.wav``, ``.json``, ``.error.txt``, temp files) never match.
    """
    if path.parent != requests or path.suffix != PROMPT_SUFFIX or is_junk(path.name):
        return None
    return path


def error_path(prompt: Path) -> Path:
    """Where a failed prompt's message goes: ``NAME.error.txt`` next to ``NAME.prompt``."""
    return prompt.with_suffix(ERROR_SUFFIX)


def needs_render(prompt: Path) -> bool:
    """True unless the prompt was already answered since it was last written.

    Answered means ``NAME.wav`` and ``NAME.json`` both exist and are at least as new as the
    prompt, or ``NAME.error.txt`` is (a failed prompt is retried only after an edit). "At
    least as new" rather than "newer" so coarse-timestamp filesystems (FAT, SMB: 1-2 s)
    do not render the same prompt forever. A prompt that vanished needs nothing.
    """
    try:
        written = prompt.stat().st_mtime_ns
    except OSError:
        return False

    def answered(output: Path) -> bool:
        try:
            return output.stat().st_mtime_ns >= written
        except OSError:
            return False

    if answered(error_path(prompt)):
        return False
    return not (answered(prompt.with_suffix(".wav")) and answered(prompt.with_suffix(".json")))


def has_answer(prompt: Path) -> bool:
    """True when ``NAME.wav`` and ``NAME.json``, or ``NAME.error.txt``, exist, however old."""
    return error_path(prompt).exists() or (prompt.with_suffix(".wav").exists()
                                           and prompt.with_suffix(".json").exists())


def scan_inbox(inbox: Path) -> list[Path]:
    """Top-level non-junk inbox entries, oldest first (first dropped, first ingested)."""
    return _scan(inbox, lambda path: inbox_entry(inbox, path))


def scan_requests(requests: Path) -> list[Path]:
    """Prompts in the requests folder that still need rendering, oldest first."""
    return [prompt for prompt in _scan(requests, lambda path: request_entry(requests, path))
            if needs_render(prompt)]


def _scan(folder: Path, locate: Locate) -> list[Path]:
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                path = folder / entry.name
                if locate(path) == path:
                    found.append((_mtime(entry), entry.name, path))
    except OSError as exc:
        log.warning("cannot scan %s: %s", folder, exc.strerror or exc)
    return [path for _, _, path in sorted(found)]


def _mtime(entry: os.DirEntry) -> int:
    try:
        return entry.stat(follow_symlinks=False).st_mtime_ns
    except OSError:
        return 0


def status_file(library: Path) -> Path:
    """Where the running daemon publishes its work in progress."""
    return library / "daemon-status.json"


def write_status_file(library: Path, progress: dict) -> None:
    """Publish `progress` (with ``pid`` and ``updated_at``) for `read_status_file`.

    The JSON is padded to whole 4 KiB blocks, so that on a full disk (when the paused
    daemon most needs to say why) it can still be rewritten in place: the blocks exist.
    """
    text = json.dumps(progress)
    text = text.ljust(-(-len(text) // _STATUS_BLOCK) * _STATUS_BLOCK)
    path = status_file(library)
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.is_file():
            raise
        with open(path, "r+b") as handle:  # no rename: a new file would need a new block
            data = text.encode().ljust(os.fstat(handle.fileno()).st_size)
            handle.write(data)


def read_status_file(library: Path, *, max_age: float = 30.0) -> dict:
    """The running daemon's work in progress; {} when no live daemon published it lately.

    A daemon running as another account (the service user) counts as live: signalling
    its pid is refused, not unknown.
    """
    for _ in range(2):  # a read during an in-place rewrite may see half of it: once more
        try:
            progress = json.loads(status_file(library).read_text())
            pid, updated = int(progress["pid"]), float(progress["updated_at"])
            break
        except (OSError, KeyError, TypeError):
            return {}
        except ValueError:
            continue
    else:
        return {}
    return progress if time.time() - updated <= max_age and _alive(pid) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Leftover:
    """A quarantined entry (a file or a whole kit, with its reason file) or a prompt's error
    file, and when it was written (the reason's or error file's modification time)."""

    path: Path
    companion: Path | None  # the ``.reason.txt`` of a quarantined entry
    written: float

    def age_days(self, now: float) -> float:
        return (now - self.written) / _DAY


def expired_leftovers(paths: Paths, *, keep_days: float, now: float | None = None
                      ) -> list[Leftover]:
    """Quarantined entries and error files written more than `keep_days` ago, oldest first.

    A quarantined entry is what a ``NAME.reason.txt`` under quarantine/ stands beside; files
    there without a reason (put by hand) are not the engine's to expire.
    """
    cutoff = (time.time() if now is None else now) - keep_days * _DAY
    found = []
    reasons = paths.quarantine.rglob(f"*{REASON_SUFFIX}") if paths.quarantine.is_dir() else ()
    for reason in reasons:
        entry = reason.with_name(reason.name[:-len(REASON_SUFFIX)])
        found.append(Leftover(entry, reason, _mtime_of(reason)))
    errors = paths.requests.glob(f"*{ERROR_SUFFIX}") if paths.requests.is_dir() else ()
    found += [Leftover(error, None, _mtime_of(error)) for error in errors]
    return sorted((item for item in found if item.written < cutoff),
                  key=lambda item: item.written)


def remove_leftovers(paths: Paths, leftovers: list[Leftover]) -> list[Leftover]:
    """Delete `leftovers` and the quarantine folders they leave empty; return those removed.

    Removing an error file lets the daemon try its prompt once more.
    """
    removed = []
    for item in leftovers:
        try:
            remove_entry(item.path)
            if item.companion is not None:
                item.companion.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove %s: %s", item.path, exc.strerror or exc)
            continue
        removed.append(item)
        _remove_empty_parents(item.path.parent, stop=paths.quarantine)
    return removed


def _remove_empty_parents(folder: Path, *, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or gone): the folders above are not empty either
        folder = folder.parent


def _mtime_of(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return time.time()  # removed meanwhile: never expired


#: Prompt files larger than this are refused: a prompt is a sentence, not a document.
MAX_PROMPT_BYTES = 64 * 1024


def read_prompt(path: Path) -> str:
    """The text of a prompt file; `PlanError` naming the file if unreadable or empty."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"{path.name}: cannot read the prompt: {exc.strerror}") from exc
    if len(data) > MAX_PROMPT_BYTES:
        raise PlanError(f"{path.name}: prompt is {len(data)} bytes; the limit is "
                        f"{MAX_PROMPT_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path.name}: prompt is not UTF-8 text (byte {exc.start}); "
                        "save it as UTF-8") from exc
    if not text.strip():
        raise PlanError(f"{path.name}: prompt is empty; write e.g. 'driving techno 138 bpm'")
    return text
