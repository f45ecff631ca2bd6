"""The demo kit: a ready-made construction kit zip for `traum demo` and first-time users."""

from __future__ import annotations

from pathlib import Path

from daemon.keys import format_key, parse_key
from daemon.synth.kit import key_token, synthesize_kit, write_kit_zip


def write_demo_kit(
    inbox: Path, *, bpm: float = 138.0, key: str = "A minor", seed: int = 0,
) -> Path:
    """Synthesise the kit and write ``Traum Demo Kit 138 BPM Am.zip`` into `inbox`.

    The zip is written to a hidden ``.NAME.part`` file and renamed, so an inbox watcher
    sees it only when complete. Returns the zip's path; raises `PlanError` for a bad
    `bpm` or `key`.
    """
    samples = synthesize_kit(bpm=bpm, key=key, seed=seed)
    canonical = format_key(*parse_key(key))
    name = f"Traum Demo Kit {bpm:g} BPM {key_token(canonical)}.zip"
    return write_kit_zip(samples, Path(inbox) / name)
