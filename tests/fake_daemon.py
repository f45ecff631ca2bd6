"""`run_daemon` with a small, observable stand-in for daemon.work: a real process for tests.

Usage: ``python tests/fake_daemon.py --config CONFIG``. Every call is appended as one JSON
line to ``$TRAUM_FAKE_LOG``. The fake ingest moves (folders, loose audio) or extracts (zips,
validated by `zipfile`) the entry into ``library/stems/<entry>/`` one file at a time,
sleeping ``$TRAUM_FAKE_FILE_SECONDS`` per file, so a kill mid-kit is resumable exactly like
the real journal: each file is either still in the inbox or already in the library. Bad
input goes to ``library/quarantine/``. The fake render writes a short real WAV and a JSON,
sleeping ``$TRAUM_FAKE_RENDER_SECONDS``; prompts containing "transient" fail once first,
inbox entries named "stuck" always fail and stay in the inbox.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import time
import wave
import zipfile
from pathlib import Path

from daemon.config import Config, load_config
from daemon.errors import IngestError, PlanError, RenderError, RuleError, StoreError
from daemon.service.daemon import run_daemon

AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".flac", ".mp3", ".ogg"}


def record(**fields) -> None:
    """Append one call record; a single O_APPEND write keeps lines whole across processes."""
    line = json.dumps({"pid": os.getpid(), "t": time.time(), **fields}) + "\n"
    fd = os.open(os.environ["TRAUM_FAKE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def write_wav(path: Path, *, seconds: float = 0.05, rate: int = 22050) -> None:
    """A short 440 Hz sine, written under a temp name and renamed (atomic)."""
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate)))
                      for n in range(int(seconds * rate)))
    temp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(temp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    os.replace(temp, path)


class FakeWork:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.file_seconds = float(os.environ.get("TRAUM_FAKE_FILE_SECONDS", "0"))
        self.render_seconds = float(os.environ.get("TRAUM_FAKE_RENDER_SECONDS", "0"))
        self.failed_once: set[Path] = set()

    def reconcile(self) -> None:
        record(call="reconcile")

    def reanalyse(self, *, stopping) -> None:
        """The fake analyses nothing, so nothing is ever due for re-analysis."""

    def ingest(self, path: Path) -> None:
        record(call="ingest", path=path.name, event="start")
        if "stuck" in path.name:  # a failure that leaves the entry where it is
            raise StoreError(f"{path.name}: database is locked")
        target = self.config.paths.stems / path.stem
        if path.is_dir():
            for source in sorted(p for p in path.rglob("*") if p.is_file()):
                self._store(target / source.relative_to(path), source.read_bytes())
                source.unlink()
            shutil.rmtree(path)
        elif path.suffix == ".zip":
            self._extract(path, target)
        elif path.suffix.lower() in AUDIO_SUFFIXES:
            self._store(self.config.paths.stems / "loose" / path.name, path.read_bytes())
            path.unlink()
        else:
            self._quarantine(path, "unsupported-format")
        record(call="ingest", path=path.name, event="end")

    def render(self, prompt: Path) -> None:
        record(call="render", path=prompt.name, event="start")
        try:
            text = prompt.read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise PlanError(f"{prompt.name}: bad encoding, save it as UTF-8") from exc
        if not text:
            raise PlanError(f"{prompt.name}: empty prompt")
        if "transient" in text and prompt not in self.failed_once:
            self.failed_once.add(prompt)
            raise RenderError(f"{prompt.name}: transient failure")
        time.sleep(self.render_seconds)
        write_wav(prompt.with_suffix(".wav"))
        temp = prompt.with_name(f".{prompt.stem}.json.tmp")
        temp.write_text(json.dumps({"prompt": text}), encoding="utf-8")
        os.replace(temp, prompt.with_suffix(".json"))
        record(call="render", path=prompt.name, event="end")

    def reload(self, config: Config) -> None:
        if (config.paths.rules / "broken.toml").exists():
            raise RuleError(f"{config.paths.rules / 'broken.toml'}: invalid rule")
        self.config = config
        record(call="reload", requests=str(config.paths.requests))

    def close(self) -> None:
        record(call="close")

    def status(self) -> dict:
        return {"stems": sum(1 for p in self.config.paths.stems.rglob("*") if p.is_file())}

    def _store(self, target: Path, data: bytes) -> None:
        time.sleep(self.file_seconds)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.tmp")
        temp.write_bytes(data)
        os.replace(temp, target)

    def _extract(self, archive: Path, target: Path) -> None:
        try:
            with zipfile.ZipFile(archive) as bundle:
                members = [m for m in bundle.infolist() if not m.is_dir()]
                for member in members:
                    self._store(target / member.filename, bundle.read(member))
        except zipfile.BadZipFile as exc:
            self._quarantine(archive, "corrupt-archive", exc)
        archive.unlink()

    def _quarantine(self, path: Path, reason: str, exc: Exception | None = None) -> None:
        self.config.paths.quarantine.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.config.paths.quarantine / path.name)
        record(call="quarantine", path=path.name, reason=reason)
        raise IngestError(path, reason) from exc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    return run_daemon(args.config, work=FakeWork(load_config(args.config)))


if __name__ == "__main__":
    sys.exit(main())
