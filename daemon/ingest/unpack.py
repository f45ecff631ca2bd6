"""Kit listing and safe zip extraction.

A kit arrives as a folder, a ``.zip`` archive or a loose audio file. `list_kit` turns any of
them into a `KitListing` of readable files plus what was dropped (junk) or refused (skipped).
Folders are walked without following symlinks; zips are validated entry by entry *before*
anything is written, then extracted into ``staging/<kit>/`` with every byte counted, because
header sizes are attacker-controlled. Nothing is ever written outside ``staging``.
"""

from __future__ import annotations

import os
import shutil
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from daemon.config import IngestSettings
from daemon.errors import IngestError

_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "readme", "license",
                         "licence", "icon\r", ".localized"})
_JUNK_FOLDERS = frozenset({"__macosx", ".git", ".svn"})
_JUNK_SUFFIXES = frozenset({
    # documents and links
    ".txt", ".pdf", ".nfo", ".url", ".html", ".htm", ".md", ".rtf", ".doc", ".docx", ".log",
    ".webloc", ".json", ".xml", ".ini", ".lnk",
    # images
    ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".svg", ".ico", ".heic",
    # DAW projects, presets and MIDI: not audio stems
    ".als", ".alc", ".adg", ".adv", ".flp", ".fst", ".logicx", ".ptx", ".ptf", ".cpr", ".npr",
    ".rpp", ".rpp-bak", ".mmp", ".mmpz", ".song", ".bwproject", ".aup", ".aup3", ".reason",
    ".xrns", ".ardour", ".band", ".cwp", ".sesx", ".dawproject", ".mid", ".midi", ".fxp",
    ".fxb", ".nki", ".nmsv", ".h2p", ".vital", ".serumpreset", ".sfz", ".sf2", ".xpf", ".xiz",
    ".ds",  # DrumSynth presets (LMMS, Hydrogen): text patches, not audio
    # waveform caches written by DAWs next to the audio
    ".asd", ".reapeaks", ".pk", ".pkf", ".peak", ".ovw", ".sfk",
})
_ARCHIVE_SUFFIXES = (".zip", ".rar", ".7z", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2",
                     ".tar.xz", ".txz", ".gz", ".bz2", ".xz", ".zst", ".cab", ".iso", ".dmg")
#: Leading bytes of archive formats we refuse even when misnamed.
_ARCHIVE_MAGIC = (b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_CHUNK = 1 << 20  # 1 MiB streaming chunk: bounded memory whatever the entry size
#: Entries smaller than this are exempt from the ratio test: a few KiB of silence compress
#: by 1000:1 and are harmless; bombs need size to hurt.
_RATIO_EXEMPT_BYTES = 1 << 20


@dataclass(frozen=True)
class UnpackLimits:
    """Caps applied to archives; see `daemon.config.IngestSettings`."""

    max_entries: int
    max_entry_bytes: int
    max_total_bytes: int
    max_ratio: float

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> UnpackLimits:
        return cls(max_entries=settings.max_entries, max_entry_bytes=settings.max_entry_bytes,
                   max_total_bytes=settings.max_total_bytes, max_ratio=settings.max_ratio)


@dataclass(frozen=True)
class KitEntry:
    """One candidate stem: POSIX `rel_path` inside the kit, `source` readable on disk."""

    rel_path: str
    source: Path


@dataclass(frozen=True)
class KitListing:
    """A kit's candidate stems, the junk dropped and the entries refused (with reasons)."""

    name: str
    entries: tuple[KitEntry, ...]
    junk: tuple[str, ...]
    skipped: tuple[str, ...]


def is_junk(name: str) -> bool:
    """True for OS litter, documents, images, DAW projects and waveform caches.

    `name` may be a bare file name or a relative path; any junk folder component
    (``__MACOSX/``) makes the whole path junk. Hidden files (``.name``) are junk.
    """
    parts = [part for part in name.replace("\\", "/").split("/") if part]
    if not parts or any(_is_junk_folder(part) for part in parts[:-1]):
        return True
    base = parts[-1].lower()
    if base.startswith(".") or base in _JUNK_NAMES:
        return True
    return any(base.endswith(suffix) for suffix in _JUNK_SUFFIXES)


def _is_junk_folder(name: str) -> bool:
    return name.lower() in _JUNK_FOLDERS or name.startswith(".")


def is_archive_name(name: str) -> bool:
    """True when the file name ends in an archive suffix (``.zip``, ``.tar.gz``...)."""
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def list_kit(path: Path, *, staging: Path, limits: UnpackLimits) -> KitListing:
    """List (and for zips, safely extract) the kit dropped at `path`.

    Raises
    ------
    IngestError
        ``unsafe-archive`` naming the offending entry, ``unsupported-archive`` for
        non-zip archives or encrypted entries, ``unreadable`` when `path` vanished.
    """
    path = Path(path)
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        raise IngestError(path, "unreadable", exc.strerror or str(exc)) from exc
    if stat.S_ISDIR(mode):
        return _list_folder(path)
    if not stat.S_ISREG(mode):
        raise IngestError(path, "unreadable", "not a regular file or folder")
    if _looks_like_zip(path):
        return _extract_zip(path, staging=staging, limits=limits)
    if is_archive_name(path.name) or _has_archive_magic(path):
        raise IngestError(path, "unsupported-archive", "only .zip archives are supported")
    if is_junk(path.name):
        return KitListing(name=kit_name(path), entries=(), junk=(path.name,), skipped=())
    return KitListing(name=kit_name(path), entries=(KitEntry(path.name, path),), junk=(),
                      skipped=())


def kit_name(path: Path) -> str:
    """The kit's name: a folder's name, an archive's or loose file's stem.

    Never ``""``, ``"."`` or ``".."``, so ``staging / kit_name(...)`` stays inside staging.
    """
    name = path.name if path.is_dir() else path.stem
    name = name.strip().replace("/", "_").replace("\\", "_")
    return name if name.strip(".") else "kit"


def _looks_like_zip(path: Path) -> bool:
    if path.name.lower().endswith(".zip"):
        return True
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def _has_archive_magic(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head.startswith(_ARCHIVE_MAGIC)


def _list_folder(root: Path) -> KitListing:
    entries: list[KitEntry] = []
    junk: list[str] = []
    skipped: list[str] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as scan:
            items = sorted(scan, key=lambda item: item.name)
        for item in items:
            rel = Path(item.path).relative_to(root).as_posix()
            if item.is_symlink():
                skipped.append(f"{rel}: symlink not followed")
            elif item.is_dir(follow_symlinks=False):
                if _is_junk_folder(item.name):
                    junk.append(rel + "/")
                else:
                    pending.append(Path(item.path))
            elif not item.is_file(follow_symlinks=False):
                skipped.append(f"{rel}: not a regular file (FIFO, socket or device)")
            elif is_junk(rel):
                junk.append(rel)
            elif is_archive_name(item.name):
                skipped.append(f"{rel}: nested archive not unpacked")
            else:
                entries.append(KitEntry(rel, Path(item.path)))
    entries.sort(key=lambda entry: entry.rel_path)
    return KitListing(kit_name(root), tuple(entries), tuple(sorted(junk)), tuple(sorted(skipped)))


def _extract_zip(path: Path, *, staging: Path, limits: UnpackLimits) -> KitListing:
    name = kit_name(path)
    target = Path(staging) / name
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            validate_zip(path, infos, limits=limits, archive_bytes=path.stat().st_size)
            wanted, junk, skipped = _sort_zip_entries(infos)
            if target.exists():
                shutil.rmtree(target)  # idempotent: a re-run replaces the previous staging
            entries = _extract_entries(path, archive, wanted, target=target, limits=limits)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise IngestError(path, "unsafe-archive", f"corrupt zip: {exc}") from exc
    except IngestError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return KitListing(name, entries, junk, skipped)


def validate_zip(path: Path, infos: list[zipfile.ZipInfo], *, limits: UnpackLimits,
                 archive_bytes: int) -> None:
    """Refuse the archive before extraction if any entry is unsafe; name the entry."""
    if len(infos) > limits.max_entries:
        raise IngestError(path, "unsafe-archive",
                          f"{len(infos)} entries exceed the limit of {limits.max_entries}")
    total = 0
    for info in infos:
        _check_entry_name(path, info)
        _check_entry_size(path, info, limits)
        total += info.file_size
    _check_collisions(path, infos)
    if total > limits.max_total_bytes:
        raise IngestError(path, "unsafe-archive",
                          f"{total} bytes uncompressed exceed the limit of "
                          f"{limits.max_total_bytes}")
    if total > _RATIO_EXEMPT_BYTES and total / max(archive_bytes, 1) > limits.max_ratio:
        raise IngestError(path, "unsafe-archive", f"archive expands {total / archive_bytes:.0f}x"
                          f" (limit {limits.max_ratio:g}x)")


def _check_entry_name(path: Path, info: zipfile.ZipInfo) -> None:
    # zipfile cuts names at NUL when reading; the name as stored is `orig_filename`.
    name = info.orig_filename
    problem = None
    if "\x00" in name:
        problem = "NUL byte in name"
    elif "\\" in name:
        problem = "backslash in name"
    elif name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        problem = "absolute path"
    elif ".." in PurePosixPath(name).parts:
        problem = "'..' path component"
    elif stat.S_ISLNK(info.external_attr >> 16):
        problem = "symlink entry"
    elif info.flag_bits & 0x1:
        raise IngestError(path, "unsupported-archive", f"{name!r}: encrypted entry")
    if problem:
        raise IngestError(path, "unsafe-archive", f"{name!r}: {problem}")


def _check_entry_size(path: Path, info: zipfile.ZipInfo, limits: UnpackLimits) -> None:
    if info.file_size > limits.max_entry_bytes:
        raise IngestError(path, "unsafe-archive", f"{info.filename!r}: {info.file_size} bytes "
                          f"exceed the per-entry limit of {limits.max_entry_bytes}")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_EXEMPT_BYTES and ratio > limits.max_ratio:
        raise IngestError(path, "unsafe-archive", f"{info.filename!r}: compression ratio "
                          f"{ratio:.0f} exceeds {limits.max_ratio:g}")


def _check_collisions(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse duplicate files, files that fold to the same name (``Kick.wav``/``KICK.wav``)
    and files that clash with a folder, all of which would overwrite each other somewhere."""
    files: dict[str, str] = {}
    folders: dict[str, str] = {}
    for info in infos:
        name = unicodedata.normalize("NFC", info.filename.rstrip("/"))
        parts = name.split("/")
        for depth in range(1, len(parts) if not info.is_dir() else len(parts) + 1):
            folders.setdefault("/".join(parts[:depth]).casefold(), "/".join(parts[:depth]))
        if info.is_dir():
            continue
        key = name.casefold()
        if key in files:
            raise IngestError(path, "unsafe-archive", f"{info.filename!r} collides with "
                              f"{files[key]!r} (same name after case folding)")
        files[key] = info.filename
    for key, name in files.items():
        if key in folders:
            raise IngestError(path, "unsafe-archive",
                              f"{name!r} is both a file and the folder {folders[key]!r}")


def _sort_zip_entries(infos: list[zipfile.ZipInfo]):
    wanted, junk, skipped = [], [], []
    for info in infos:
        if info.is_dir():
            continue
        if is_junk(info.filename):
            junk.append(info.filename)
        elif is_archive_name(info.filename):
            skipped.append(f"{info.filename}: nested archive not unpacked")
        else:
            wanted.append(info)
    return wanted, tuple(sorted(junk)), tuple(sorted(skipped))


def _extract_entries(path: Path, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], *,
                     target: Path, limits: UnpackLimits) -> tuple[KitEntry, ...]:
    root = target.resolve(strict=False)
    budget = limits.max_total_bytes
    entries = []
    for info in sorted(infos, key=lambda item: item.filename):
        destination = (target / info.filename).resolve(strict=False)
        if root not in destination.parents:  # belt and braces after name validation
            raise IngestError(path, "unsafe-archive", f"{info.filename!r} escapes staging")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, _open_new(destination) as sink:
            written = copy_limited(source, sink, limit=min(limits.max_entry_bytes, budget),
                                   what=info.filename, path=path)
        budget -= written
        entries.append(KitEntry(info.filename, destination))
    return tuple(entries)


def _open_new(destination: Path) -> BinaryIO:
    # O_NOFOLLOW: never write through a symlink planted at the destination.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(destination, flags, 0o644), "wb")


def copy_limited(source: BinaryIO, sink: BinaryIO, *, limit: int, what: str, path: Path) -> int:
    """Copy `source` to `sink` in chunks, aborting once more than `limit` bytes arrive.

    Returns the number of bytes copied. The count, not any header, is what is trusted.
    """
    copied = 0
    while chunk := source.read(_CHUNK):
        copied += len(chunk)
        if copied > limit:
            raise IngestError(path, "unsafe-archive",
                              f"{what!r}: stream exceeds the size limit of {limit} bytes")
        sink.write(chunk)
    return copied
