"""Kit assembly: the recipe list, sample-pack names, ground truth, and writing to disk.

`synthesize_kit` renders every recipe at one tempo and key. With ``names="descriptive"``
the names read like a commercial pack (category words, ``128bpm``, ``Am``); with
``names="anonymous"`` they reveal nothing, for testing audio-only analysis.
Writers are atomic: each file appears under its final name only once complete.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf

from daemon.compose.plan import MAX_BPM, MIN_BPM
from daemon.errors import PlanError
from daemon.keys import TONICS, format_key, parse_key
from daemon.synth import drums, fx, tonal
from daemon.synth.dsp import rng_for
from daemon.taxonomy import CATEGORIES

KINDS = ("loop", "oneshot")
NAME_STYLES = ("descriptive", "anonymous")
#: Longest loop we synthesise; longer requests are a mistake, not a kit.
MAX_BARS = 64
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 22050, 192000


@dataclass(frozen=True)
class KitSample:
    """One sample of a kit: float32 stereo ``(2, n)`` audio plus its ground truth.

    `name` is a relative POSIX path inside the kit ending in ``.wav``; `bpm` is set for
    loops only; `key` is canonical (``"A minor"``) or None for drums and noise.
    """

    name: str
    audio: np.ndarray = field(compare=False, repr=False)
    sample_rate: int
    category: str
    kind: str
    bpm: float | None
    key: str | None
    tags: tuple[str, ...]

    def __post_init__(self) -> None:
        path = PurePosixPath(self.name)
        if path.is_absolute() or ".." in path.parts or path.suffix != ".wav":
            raise ValueError(f"sample name must be a relative .wav path (got {self.name!r})")
        if self.category not in CATEGORIES or self.kind not in KINDS:
            raise ValueError(f"{self.name}: bad category/kind {self.category!r}/{self.kind!r}")
        if self.audio.dtype != np.float32 or self.audio.ndim != 2 or self.audio.shape[0] != 2:
            raise ValueError(f"{self.name}: audio must be float32 of shape (2, n)")


@dataclass(frozen=True)
class _Spec:
    sample_rate: int
    bpm: float
    key: str
    seed: int
    bars: int


@dataclass(frozen=True)
class _Recipe:
    """How to make one kit sample and what it is (`keyful` loops carry the kit's key)."""

    folder: str
    title: str
    category: str
    tags: tuple[str, ...]
    make: Callable[[_Spec], np.ndarray]
    loop: bool = False
    keyful: bool = False


def _tonal(generator: Callable[..., np.ndarray], **extra) -> Callable[[_Spec], np.ndarray]:
    """Recipe maker for a key-ful loop generator."""
    return lambda s: generator(sample_rate=s.sample_rate, bpm=s.bpm, key=s.key, bars=s.bars,
                               seed=s.seed, **extra)


RECIPES: tuple[_Recipe, ...] = (
    _Recipe("Drums/Kicks", "Kick_Punchy", "kick", ("punchy", "tight", "techno"),
            lambda s: drums.synth_kick(sample_rate=s.sample_rate, seed=s.seed, pitch_hz=52.0,
                                       decay=0.35, click=0.7, drive=0.15)),
    _Recipe("Drums/Kicks", "Kick_Deep", "kick", ("deep", "boomy", "long"),
            lambda s: drums.synth_kick(sample_rate=s.sample_rate, seed=s.seed, pitch_hz=45.0,
                                       decay=0.9, click=0.2)),
    _Recipe("Drums/Kicks", "Kick_Industrial", "kick", ("distorted", "industrial", "aggressive"),
            lambda s: drums.synth_kick(sample_rate=s.sample_rate, seed=s.seed, pitch_hz=55.0,
                                       decay=0.5, click=0.8, drive=0.7)),
    _Recipe("Drums/Snares", "Snare_Tight", "snare", ("tight", "bright"),
            lambda s: drums.synth_snare(sample_rate=s.sample_rate, seed=s.seed)),
    _Recipe("Drums/Claps", "Clap_Wide", "clap", ("wide", "roomy", "classic"),
            lambda s: drums.synth_clap(sample_rate=s.sample_rate, seed=s.seed)),
    _Recipe("Drums/HiHats", "HiHat_Closed", "hihat", ("closed", "short", "metallic"),
            lambda s: drums.synth_hihat(sample_rate=s.sample_rate, seed=s.seed, decay=0.08)),
    _Recipe("Drums/HiHats", "HiHat_Open", "hihat", ("open", "metallic"),
            lambda s: drums.synth_hihat(sample_rate=s.sample_rate, seed=s.seed, decay=0.5)),
    _Recipe("Drums/Cymbals", "Ride_Bright", "cymbal", ("ride", "bright", "metallic"),
            lambda s: drums.synth_ride(sample_rate=s.sample_rate, seed=s.seed)),
    _Recipe("Drums/Percussion", "Perc_Metal", "perc", ("metallic", "short"),
            lambda s: drums.synth_metal_perc(sample_rate=s.sample_rate, seed=s.seed)),
    _Recipe("Drum Loops", "Drum_Loop_Driving", "drum_loop", ("driving", "four-on-the-floor"),
            lambda s: drums.synth_drum_loop(sample_rate=s.sample_rate, bpm=s.bpm, bars=s.bars,
                                            seed=s.seed), loop=True),
    _Recipe("Bass Loops", "Bass_Rolling", "bass", ("rolling", "driving", "dark"),
            _tonal(tonal.synth_bass_loop, style="rolling"), loop=True, keyful=True),
    _Recipe("Bass Loops", "Bass_Acid", "bass", ("acid", "resonant", "squelchy"),
            _tonal(tonal.synth_bass_loop, style="acid"), loop=True, keyful=True),
    _Recipe("Bass Loops", "Bass_Sub", "bass", ("sub", "deep", "offbeat"),
            _tonal(tonal.synth_bass_loop, style="sub"), loop=True, keyful=True),
    _Recipe("Synth Loops", "Pad_Dark", "pad", ("dark", "lush", "wide"),
            _tonal(tonal.synth_pad_loop), loop=True, keyful=True),
    _Recipe("Synth Loops", "Arp_Pluck", "arp", ("plucky", "hypnotic", "delayed"),
            _tonal(tonal.synth_arp_loop), loop=True, keyful=True),
    _Recipe("Atmos", "Atmo_Drone", "atmo", ("dark", "ambient", "evolving"),
            _tonal(tonal.synth_drone_loop), loop=True, keyful=True),
    _Recipe("FX", "FX_Riser_Noise", "fx", ("riser", "noise", "build"),
            lambda s: fx.synth_riser(sample_rate=s.sample_rate, bpm=s.bpm, bars=4, seed=s.seed)),
    _Recipe("FX", "FX_Downlifter_Noise", "fx", ("downlifter", "noise", "transition"),
            lambda s: fx.synth_riser(sample_rate=s.sample_rate, bpm=s.bpm, bars=2, seed=s.seed,
                                     rising=False)),
)


def synthesize_kit(
    *, bpm: float = 138.0, key: str = "A minor", seed: int = 0, names: str = "descriptive",
    sample_rate: int = 44100, bars: int = 4,
) -> list[KitSample]:
    """Render the whole kit; deterministic for (`bpm`, `key`, `seed`, `sample_rate`, `bars`).

    Loops are exactly `bars` bars of 4/4 at `bpm`. Raises `PlanError` for a bpm outside
    the plan range, a non-canonical key or a bad bar count, ValueError for a bad `names`
    or `sample_rate`.
    """
    spec = _check_request(bpm=bpm, key=key, seed=seed, names=names, sample_rate=sample_rate,
                          bars=bars)
    labels = (_descriptive_names(spec) if names == "descriptive"
              else _anonymous_names(len(RECIPES), seed=seed))
    return [
        KitSample(name=label, audio=recipe.make(spec), sample_rate=sample_rate,
                  category=recipe.category, kind="loop" if recipe.loop else "oneshot",
                  bpm=float(bpm) if recipe.loop else None,
                  key=spec.key if recipe.keyful else None, tags=recipe.tags)
        for recipe, label in zip(RECIPES, labels)
    ]


def bpm_token(bpm: float) -> str:
    """Tempo as sample packs write it: ``128bpm``, ``127.5bpm``."""
    return f"{bpm:g}bpm"


def key_token(key: str) -> str:
    """Short key as sample packs write it: ``Am``, ``F#m`` (minor), ``Cmaj`` (major)."""
    tonic, mode = parse_key(key)
    return TONICS[tonic] + ("m" if mode == "minor" else "maj")


def ground_truth(samples: list[KitSample]) -> list[dict]:
    """JSON-ready truth per sample: name, category, kind, bpm, key, tags."""
    return [{"name": s.name, "category": s.category, "kind": s.kind, "bpm": s.bpm,
             "key": s.key, "tags": list(s.tags)} for s in samples]


def write_kit_folder(
    samples: list[KitSample], dest: Path, *, subtype: str = "PCM_24",
) -> list[Path]:
    """Write each sample as WAV under `dest` (sub-folders from the names); return the paths."""
    paths = []
    for sample in samples:
        path = Path(dest) / sample.name
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, _wav_writer(sample, subtype=subtype))
        paths.append(path)
    return paths


def write_kit_zip(samples: list[KitSample], dest_zip: Path, *, subtype: str = "PCM_24") -> Path:
    """Write all samples into one zip (names as entry paths) atomically; return its path."""

    def write(partial: Path) -> None:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED,
                             compresslevel=1) as archive:
            for sample in samples:
                archive.writestr(sample.name, _wav_bytes(sample, subtype=subtype))

    dest_zip = Path(dest_zip)
    dest_zip.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(dest_zip, write)
    return dest_zip


def _check_request(
    *, bpm: float, key: str, seed: int, names: str, sample_rate: int, bars: int,
) -> _Spec:
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise PlanError(f"bpm: must be between {MIN_BPM:g} and {MAX_BPM:g} (got {bpm:g})")
    if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
        raise PlanError(f"bars: must be a whole number from 1 to {MAX_BARS} (got {bars!r})")
    if names not in NAME_STYLES:
        raise ValueError(f"names must be one of {NAME_STYLES} (got {names!r})")
    # 22.05 kHz keeps every filter corner (up to the snare's 9 kHz) below Nyquist;
    # 192 kHz is the top of real audio interfaces.
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
                         f"(got {sample_rate})")
    canonical = format_key(*parse_key(key))
    return _Spec(sample_rate=sample_rate, bpm=float(bpm), key=canonical, seed=seed, bars=bars)


def _descriptive_names(spec: _Spec) -> list[str]:
    """Pack-style names; one-shots are numbered within their category."""
    counts: dict[str, int] = {}
    labels = []
    for recipe in RECIPES:
        if recipe.loop:
            tokens = [bpm_token(spec.bpm)] + ([key_token(spec.key)] if recipe.keyful else [])
        else:
            counts[recipe.category] = counts.get(recipe.category, 0) + 1
            tokens = [f"{counts[recipe.category]:02d}"]
        labels.append(f"{recipe.folder}/TE_{recipe.title}_{'_'.join(tokens)}.wav")
    return labels


def _anonymous_names(count: int, *, seed: int) -> list[str]:
    """``sample_NN.wav`` in a seeded shuffle, so not even the order hints at the category."""
    order = rng_for(seed, "anonymous").permutation(count)
    return [f"sample_{index + 1:02d}.wav" for index in order]


def _wav_writer(sample: KitSample, *, subtype: str) -> Callable[[Path], None]:
    return lambda partial: sf.write(partial, sample.audio.T, sample.sample_rate,
                                    subtype=subtype, format="WAV")


def _wav_bytes(sample: KitSample, *, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, sample.audio.T, sample.sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Run `write` on a hidden ``.NAME.part`` sibling, fsync it, then rename over `path`.

    A watcher never sees a half-written file under the final name, and a failed write
    leaves any previous file intact and no partial file behind.
    """
    partial = path.with_name(f".{path.name}.part")
    try:
        write(partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
