"""Kit listing and safe zip extraction: folders, loose files, and archive attacks."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from daemon.config import IngestSettings
from daemon.errors import IngestError
from daemon.ingest.unpack import (
    KitEntry,
    UnpackLimits,
    copy_limited,
    is_junk,
    list_kit,
)

LIMITS = UnpackLimits(max_entries=50, max_entry_bytes=2_000_000, max_total_bytes=5_000_000,
                      max_ratio=50.0)
WAV = b"RIFF" + b"\x00" * 60  # content does not matter to the unpacker


def make_zip(path: Path, entries: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def unpack_error(path: Path, staging: Path, limits: UnpackLimits = LIMITS) -> IngestError:
    with pytest.raises(IngestError) as caught:
        list_kit(path, staging=staging, limits=limits)
    return caught.value


@pytest.mark.parametrize("name", [
    ".DS_Store", "._Kick.wav", "__MACOSX/Drums/._Kick.wav", "Thumbs.db", "desktop.ini",
    "README", "readme.txt", "Info.pdf", "Kit.nfo", "Website.url", "index.html", "cover.jpg",
    "Art.PNG", "Project.als", "Beat.flp", "Song.logicx", "Mix.ptx", "Song.cpr", "Song.rpp",
    "Song.mmpz", "Kick.wav.asd", "Kick.wav.reapeaks", "Drums/Groove.mid", "drumsynth/kick.ds",
])
def test_junk_names(name: str) -> None:
    assert is_junk(name)


@pytest.mark.parametrize("name", ["Kick.wav", "Drums/Snare 01.aif", "Bass.flac", "Pad.ogg",
                                  "Vox.mp3", "Untitled"])
def test_audio_names_are_not_junk(name: str) -> None:
    assert not is_junk(name)


def test_limits_come_from_settings() -> None:
    settings = IngestSettings(workers=0, settle_seconds=1.0, max_entries=7,
                              max_entry_bytes=100, max_total_bytes=1000, max_ratio=3.0)
    assert UnpackLimits.from_settings(settings) == UnpackLimits(7, 100, 1000, 3.0)


def test_folder_walk(tmp_path: Path) -> None:
    kit = tmp_path / "Kit A"
    (kit / "Drums").mkdir(parents=True)
    (kit / "Drums" / "Kick.wav").write_bytes(WAV)
    (kit / "Bass.wav").write_bytes(WAV)
    (kit / ".DS_Store").write_bytes(b"x")
    (kit / "readme.txt").write_text("hi")
    (kit / "__MACOSX").mkdir()
    (kit / "__MACOSX" / "._Bass.wav").write_bytes(b"x")
    (kit / "Extras.zip").write_bytes(b"PK\x03\x04")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Secret.wav").write_bytes(WAV)
    (kit / "Linked").symlink_to(outside, target_is_directory=True)
    (kit / "Link.wav").symlink_to(outside / "Secret.wav")
    os.mkfifo(kit / "Pipe.wav")

    listing = list_kit(kit, staging=tmp_path / "staging", limits=LIMITS)

    assert listing.name == "Kit A"
    assert listing.entries == (KitEntry("Bass.wav", kit / "Bass.wav"),
                               KitEntry("Drums/Kick.wav", kit / "Drums" / "Kick.wav"))
    assert set(listing.junk) == {".DS_Store", "readme.txt", "__MACOSX/"}
    reasons = "\n".join(listing.skipped)
    assert "Linked: symlink" in reasons and "Link.wav: symlink" in reasons
    assert "Pipe.wav: not a regular file" in reasons
    assert "Extras.zip: nested archive" in reasons
    assert not (tmp_path / "staging").exists()  # folders are read in place


def test_loose_file_is_a_one_entry_kit(tmp_path: Path) -> None:
    loose = tmp_path / "Big Kick 01.wav"
    loose.write_bytes(WAV)
    listing = list_kit(loose, staging=tmp_path / "staging", limits=LIMITS)
    assert listing.name == "Big Kick 01"
    assert listing.entries == (KitEntry("Big Kick 01.wav", loose),)


def test_zip_extracts_into_staging_only(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "Techno Kit.zip", {
        "Techno Kit/Drums/Kick.wav": b"kick" * 100, "Techno Kit/Bass.wav": b"bass" * 100,
        "Techno Kit/readme.txt": b"hello", "__MACOSX/Techno Kit/._Bass.wav": b"x",
        "Techno Kit/More.zip": b"PK\x03\x04", "Techno Kit/Drums/": b""})
    staging = tmp_path / "library" / "staging"
    before = all_files(tmp_path)

    listing = list_kit(archive, staging=staging, limits=LIMITS)

    assert listing.name == "Techno Kit"
    assert [e.rel_path for e in listing.entries] == ["Techno Kit/Bass.wav",
                                                     "Techno Kit/Drums/Kick.wav"]
    assert listing.entries[1].source == staging / "Techno Kit" / "Techno Kit/Drums/Kick.wav"
    assert listing.entries[1].source.read_bytes() == b"kick" * 100
    assert set(listing.junk) == {"Techno Kit/readme.txt", "__MACOSX/Techno Kit/._Bass.wav"}
    assert listing.skipped == ("Techno Kit/More.zip: nested archive not unpacked",)
    created = all_files(tmp_path) - before
    assert all(name.startswith("library/staging/Techno Kit/") for name in created)
    assert len(created) == 2


def test_zip_extraction_is_idempotent(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "Kit.zip", {"Kick.wav": b"new"})
    staging = tmp_path / "staging"
    (staging / "Kit").mkdir(parents=True)
    (staging / "Kit" / "Kick.wav").write_bytes(b"stale data from an interrupted run")
    (staging / "Kit" / "Leftover.wav").write_bytes(b"old")
    first = list_kit(archive, staging=staging, limits=LIMITS)
    second = list_kit(archive, staging=staging, limits=LIMITS)
    assert first == second
    assert all_files(staging) == {"Kit/Kick.wav"}
    assert (staging / "Kit" / "Kick.wav").read_bytes() == b"new"


@pytest.mark.parametrize(("name", "problem"), [
    ("../evil.wav", "'..'"),
    ("Kit/../../evil.wav", "'..'"),
    ("/etc/x.wav", "absolute"),
    ("C:/x.wav", "absolute"),
    ("a\\..\\b.wav", "backslash"),
    ("kick\x00.wav", "NUL"),
])
def test_zip_slip_names_are_refused(tmp_path: Path, name: str, problem: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Kit/Kick.wav", b"fine")
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # bypass ZipInfo's own sanitising: attackers do
        archive.writestr(info, b"evil")
    path = tmp_path / "inbox" / "Evil.zip"
    path.parent.mkdir()
    path.write_bytes(buffer.getvalue())
    staging = tmp_path / "library" / "staging"

    error = unpack_error(path, staging)

    assert error.reason == "unsafe-archive" and problem in error.detail
    assert repr(name) in error.detail  # the offending entry is named
    assert all_files(tmp_path) == {"inbox/Evil.zip"}  # nothing written anywhere


def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "Kit.zip", {"Kick.wav": b"x"}, symlink="Kit/passwd.wav")
    error = unpack_error(path, tmp_path / "staging")
    assert error.reason == "unsafe-archive" and "symlink" in error.detail
    assert "passwd.wav" in error.detail


def test_casefold_collision_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "Kit.zip", {"Kit/Kick.wav": b"a", "Kit/KICK.wav": b"b"})
    error = unpack_error(path, tmp_path / "staging")
    assert error.reason == "unsafe-archive" and "case folding" in error.detail


def test_file_folder_clash_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "Kit.zip", {"Kit/Drums": b"a", "Kit/drums/Kick.wav": b"b"})
    error = unpack_error(path, tmp_path / "staging")
    assert error.reason == "unsafe-archive" and "both a file and the folder" in error.detail


def test_too_many_entries(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "Kit.zip", {f"s{i:03d}.wav": b"x" for i in range(51)})
    error = unpack_error(path, tmp_path / "staging")
    assert error.reason == "unsafe-archive" and "51 entries" in error.detail


def test_zip_bomb_ratio(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "Bomb.zip", {"Pad.wav": bytes(1_500_000)})  # zeros: ~1000:1
    error = unpack_error(path, tmp_path / "staging")
    assert error.reason == "unsafe-archive" and "ratio" in error.detail


def test_entry_and_total_size_limits(tmp_path: Path) -> None:
    big = os.urandom(300_000)  # incompressible, so only the size limits can trip
    path = make_zip(tmp_path / "Kit.zip", {"a.wav": big, "b.wav": big})
    small = UnpackLimits(max_entries=10, max_entry_bytes=200_000, max_total_bytes=10**7,
                         max_ratio=50.0)
    assert "per-entry limit" in unpack_error(path, tmp_path / "s1", small).detail
    total = UnpackLimits(max_entries=10, max_entry_bytes=10**6, max_total_bytes=500_000,
                         max_ratio=50.0)
    assert "uncompressed exceed" in unpack_error(path, tmp_path / "s2", total).detail


def _lie_about_size(data: bytes, name: bytes, declared: int) -> bytes:
    """Patch the local and central headers of entry `name` to claim `declared` bytes."""
    out = bytearray(data)
    local = out.index(b"PK\x03\x04")
    struct.pack_into("<I", out, local + 22, declared)
    central = out.index(b"PK\x01\x02")
    assert out[central + 46: central + 46 + len(name)] == name
    struct.pack_into("<I", out, central + 24, declared)
    return bytes(out)


def test_lying_header_is_caught_while_streaming(tmp_path: Path) -> None:
    payload = os.urandom(400_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Kit/Kick.wav", payload)
    path = tmp_path / "Liar.zip"
    path.write_bytes(_lie_about_size(buffer.getvalue(), b"Kit/Kick.wav", 1000))
    staging = tmp_path / "staging"
    limits = UnpackLimits(max_entries=10, max_entry_bytes=100_000, max_total_bytes=10**6,
                          max_ratio=50.0)  # the header's 1000 bytes pass validation

    error = unpack_error(path, staging, limits)

    assert error.reason == "unsafe-archive"
    assert not staging.exists() or all_files(staging) == set()  # partial output removed


def test_stream_counter_aborts_past_the_limit(tmp_path: Path) -> None:
    sink = io.BytesIO()
    with pytest.raises(IngestError, match="stream exceeds the size limit of 2500000"):
        copy_limited(io.BytesIO(bytes(3_000_000)), sink, limit=2_500_000, what="x.wav",
                     path=tmp_path / "Kit.zip")
    assert sink.tell() <= 2_500_000  # stopped at the chunk that crossed the limit
    assert copy_limited(io.BytesIO(b"abc"), io.BytesIO(), limit=3, what="y",
                        path=tmp_path) == 3


@pytest.mark.parametrize("name", ["Kit.rar", "Kit.7z", "Kit.tar.gz", "Kit.tgz"])
def test_non_zip_archives_are_unsupported(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00" * 64)
    assert unpack_error(path, tmp_path / "staging").reason == "unsupported-archive"


def test_misnamed_rar_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "Kick.wav"
    path.write_bytes(b"Rar!\x1a\x07\x01\x00" + b"\x00" * 64)
    assert unpack_error(path, tmp_path / "staging").reason == "unsupported-archive"


def test_corrupt_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Broken.zip"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    assert unpack_error(path, tmp_path / "staging").reason == "unsafe-archive"


def test_dotted_archive_name_stays_inside_staging(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "..zip", {"Kick.wav": b"x"})
    staging = tmp_path / "staging"
    listing = list_kit(path, staging=staging, limits=LIMITS)
    assert listing.name not in ("", ".", "..")
    assert staging.resolve() in listing.entries[0].source.resolve().parents
