"""The labelled sources of the classifier's training corpus, as jobs that yield audio clips.

Each source is a Debian package (or the kit synthesiser) whose files or notes we can label
without listening to every one: names, folders and General MIDI maps say what they are.
A `Job` makes the clips of one slice of a source (one FluidSynth render, a handful of files)
and is picklable, so `build_corpus` can spread jobs over processes. Labels are conservative:
a file whose category a producer could argue about is left out rather than guessed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from corpus_gm import (
    DRUM_CHANNEL,
    FLUID_KITS,
    GM_DRUMS,
    GM_KITS,
    PROGRAMS,
    SWEEP_PROGRAMS,
    drum_hit_phrases,
    drum_loop_phrases,
    melodic_phrases,
    render_phrases,
    sweep_phrases,
)
from corpus_gm import RENDER_RATE as GM_RATE

SONIC_PI_ROOT = Path("/usr/share/sonic-pi/samples")
LMMS_ROOT = Path("/usr/share/lmms/samples")
SF2_ROOT = Path("/usr/share/sounds/sf2")
AVL_KITS = ("Black_Pearl_4_LV2", "Red_Zeppelin_4_LV2")
GM_FONTS = {"timgm6mb": "TimGM6mb.sf2", "fluidr3": "FluidR3_GM.sf2"}
_SEED = 2024  # phrase content; each font gets its own offset so the two differ


@dataclass(frozen=True)
class Clip:
    source: str
    file_id: str
    label: str
    audio: np.ndarray  # (channels, n) float32
    sample_rate: int


@dataclass(frozen=True)
class Job:
    source: str
    name: str
    make: Callable[[], list[Clip]]


# -- sonic-pi-samples ----------------------------------------------------------------------

#: File-name prefix → category; `_SONIC_PI_FILES` overrides single files, None leaves out.
_SONIC_PI_PREFIXES = {"bd_": "kick", "sn_": "snare", "drum_tom_": "tom", "tabla_": "perc",
                      "bass_": "bass", "glitch_perc": "perc", "mehackit_robot": "vocal",
                      "glitch_robot": "vocal", "ambi_": "atmo"}
_SONIC_PI_FILES = {
    "drum_bass_hard": "kick", "drum_bass_soft": "kick", "drum_heavy_kick": "kick",
    "elec_soft_kick": "kick", "elec_hollow_kick": "kick",
    "drum_snare_hard": "snare", "drum_snare_soft": "snare", "elec_snare": "snare",
    "elec_lo_snare": "snare", "elec_mid_snare": "snare", "elec_hi_snare": "snare",
    "elec_filt_snare": "snare", "perc_snap": "clap", "perc_snap2": "clap",
    # menegass's kit calls every cymbal "cymbal": closed, pedal and open are the hi-hat
    # (0.2-1.8 s, most energy above 5 kHz), hard and soft the crash.
    "drum_cymbal_closed": "hihat", "drum_cymbal_pedal": "hihat", "drum_cymbal_open": "hihat",
    "drum_cymbal_hard": "cymbal", "drum_cymbal_soft": "cymbal", "drum_splash_hard": "cymbal",
    "drum_splash_soft": "cymbal", "elec_cymbal": "cymbal",
    "elec_fuzz_tom": "tom", "drum_cowbell": "perc", "elec_triangle": "perc",
    "elec_wood": "perc", "glitch_bass_g": "bass",
    "ambi_choir": "pad", "ambi_piano": None, "ambi_dark_woosh": "fx", "ambi_swoosh": "fx",
    "loop_amen": "drum_loop", "loop_amen_full": "drum_loop", "loop_breakbeat": "drum_loop",
    "loop_compus": "drum_loop", "loop_industrial": "drum_loop", "loop_mehackit1": "drum_loop",
    "loop_mehackit2": "drum_loop", "loop_perc1": "drum_loop", "loop_perc2": "drum_loop",
    "loop_safari": "drum_loop", "loop_tabla": "drum_loop", "loop_electric": "drum_loop",
    "loop_drone_g_97": "atmo", "vinyl_hiss": "atmo",
    "guit_em9": "chord", "guit_e_fifths": "chord",
    "perc_door": "fx", "perc_impact1": "fx", "perc_impact2": "fx", "perc_swoosh": "fx",
    "misc_cineboom": "fx", "vinyl_backspin": "fx", "vinyl_rewind": "fx",
    "vinyl_scratch": "fx", "misc_crow": "fx",
}


def sonic_pi_labels(root: Path = SONIC_PI_ROOT) -> dict[str, str]:
    """Labelled sonic-pi samples, ``{file name: category}``; unlabelled files are left out
    (electronic blips, bells, the drum roll, loops mixing drums and synths, guitar runs)."""
    labels = {}
    for path in sorted(root.glob("*.flac")):
        stem = path.stem
        label = _SONIC_PI_FILES[stem] if stem in _SONIC_PI_FILES else next(
            (category for prefix, category in _SONIC_PI_PREFIXES.items()
             if stem.startswith(prefix)), None)
        if label:
            labels[path.name] = label
    return labels


def _decoded_files(source: str, root: Path, labels: dict[str, str]) -> list[Clip]:
    from daemon.ingest.probe import decode_audio

    clips = []
    for name, label in labels.items():
        decoded = decode_audio(root / name)
        clips.append(Clip(source, name, label, decoded.audio, decoded.sample_rate))
    return clips


def _file_jobs(source: str, root: Path, labels: dict[str, str], *, per_job: int = 20
               ) -> list[Job]:
    names = sorted(labels)
    return [Job(source, f"{source} files {start}",
                functools.partial(_decoded_files, source, root,
                                  {name: labels[name] for name in names[start:start + per_job]}))
            for start in range(0, len(names), per_job)]


# -- lmms-common ---------------------------------------------------------------------------

# lmms-common: folder → category; files in mixed folders listed by hand (listened names).
_LMMS_FOLDERS = {"basses": ("bass", "oneshot"), "bassloops": ("bass", "loop"),
                 "beats": ("drum_loop", "loop"), "effects": ("fx", "oneshot"),
                 "stringsnpads": ("pad", None), "latin": ("lead", None),
                 "instruments": ("synth", None), "drums": (None, "oneshot")}
_LMMS_FILES = {
    "beats/rave_hihat01": "hihat", "beats/rave_hihat02": "hihat", "beats/rave_kick01": "kick",
    "beats/rave_kick02": "kick", "beats/rave_snare01": "snare",
    "instruments/bassslap01": "bass", "instruments/bassslap02": "bass",
    "instruments/cello01": "lead", "instruments/flute01": "lead",
    "instruments/trumpet01": "lead", "instruments/violin_double_stop01": "lead",
    "instruments/violin_fingered01": "lead", "instruments/violin_pizzicato01": "lead",
    "instruments/steel_guitar01": "lead", "instruments/steel_guitar_heavy_distorted01": "lead",
    "instruments/steel_guitar_medium_distorted01": "lead",
    "instruments/steel_guitar_slight_distorted01": "lead",
    "instruments/e_piano_accord01": "chord", "instruments/e_piano_accord02": "chord",
    "stringsnpads/korg_poly6_drone01": "atmo", "stringsnpads/nord_ambient01": "atmo",
    "drums/nasty_bass01": "kick", "drums/nasty_rim01": "perc", "drums/nasty_snare01": "snare",
    "drums/zap01": "fx", "drums/zap02": "fx", "drums/zap03": "fx",
}
# drums/: the name's instrument word is the category (the files are named by instrument).
_DRUM_WORDS = (("bassdrum", "kick"), ("kick", "kick"), ("snare", "snare"), ("clap", "clap"),
               ("hihat", "hihat"), ("crash", "cymbal"), ("ride", "cymbal"), ("tom", "tom"),
               ("rim", "perc"), ("sidestick", "perc"), ("shaker", "perc"), ("clav", "perc"),
               ("wood", "perc"))


@dataclass(frozen=True)
class Truth:
    rel_path: str
    category: str
    kind: str | None


def lmms_ground_truth(root: Path = LMMS_ROOT) -> list[Truth]:
    """Labelled lmms samples. misc/ (no clear categories), shapes/ and waveforms/
    (single-cycle oscillator tables) and drumsynth/ (presets, not audio) are left out."""
    truths = []
    for folder, (category, kind) in _LMMS_FOLDERS.items():
        for path in sorted((root / folder).glob("*.*")):
            key = f"{folder}/{path.stem}"
            label = _LMMS_FILES.get(key) or category or _drum_word(path.stem)
            truths.append(Truth(f"{folder}/{path.name}", label, kind))
    return truths


def _drum_word(stem: str) -> str:
    return next(category for word, category in _DRUM_WORDS if stem.startswith(word))


# -- hydrogen-drumkits ----------------------------------------------------------------------

HYDROGEN_ROOT = Path("/usr/share/hydrogen/data/drumkits")
#: Left out: Glen MacArthur's Black Pearl is the kit avldrums samples too, so leaving one
#: source out would still train on the other's recordings of the same drums.
_HYDROGEN_SKIP_KITS = ("The Black Pearl 1.0",)
#: Instrument-name word → category, first match wins (so "snare rimshot" is a snare, "rim
#: click" a side stick, "djembe bass" a hand drum and "ride bell" a cymbal). Names with none
#: of these words (numbered pads, "Click", "Zap", "FX", unnamed loops, rolls) are left out.
_HYDROGEN_WORDS = (("roll", None), ("kick", "kick"), ("bassdrum", "kick"),
                   ("bass drum", "kick"), ("snare", "snare"), ("clap", "clap"),
                   ("snap", "clap"), ("hh", "hihat"), ("hat", "hihat"), ("crash", "cymbal"),
                   ("ride", "cymbal"), ("china", "cymbal"), ("splash", "cymbal"),
                   ("cymbal", "cymbal"), ("tom", "tom"), ("stick", "perc"), ("rim", "perc"),
                   ("cowbell", "perc"), ("conga", "perc"), ("bongo", "perc"),
                   ("tambourine", "perc"), ("agogo", "perc"), ("clave", "perc"),
                   ("woodblock", "perc"), ("maraca", "perc"), ("shaker", "perc"),
                   ("cajon", "perc"), ("djembe", "perc"), ("sangban", "perc"),
                   ("dununba", "perc"), ("kenkeni", "perc"))


def hydrogen_labels(root: Path = HYDROGEN_ROOT) -> dict[str, str]:
    """Labelled Hydrogen drum samples, ``{"KIT/FILE": category}``, every velocity layer of
    every instrument whose name says what it is (each kit's ``drumkit.xml``)."""
    labels = {}
    for kit_file in sorted(root.glob("*/drumkit.xml")):
        if kit_file.parent.name in _HYDROGEN_SKIP_KITS:
            continue
        for name, files in _hydrogen_instruments(kit_file):
            label = next((category for word, category in _HYDROGEN_WORDS
                          if word in name.lower()), None)
            for file in files:
                if label and (kit_file.parent / file).is_file():
                    labels[f"{kit_file.parent.name}/{file}"] = label
    return labels


def _hydrogen_instruments(kit_file: Path) -> list[tuple[str, list[str]]]:
    import xml.etree.ElementTree as ET

    root = ET.parse(kit_file).getroot()
    namespace = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return [(instrument.findtext(f"{namespace}name") or "",
             [element.text for element in instrument.iter(f"{namespace}filename")
              if element.text])
            for instrument in root.iter(f"{namespace}instrument")]


# -- soundfonts ----------------------------------------------------------------------------

#: avldrums notes → category (from the kits' sample names: 37 side stick, 40 snare edge,
#: 43/47 tom edges, 44 pedal hat, 48 hat swish, 50/52/58 chokes, 53 ride bell, 60 a Paiste
#: 22" cymbal, 54 tambourine, 56 cowbell, 61 maraca). Five velocity layers each.
AVL_DRUMS = {36: "kick", 37: "perc", 38: "snare", 39: "clap", 40: "snare", 41: "tom",
             42: "hihat", 43: "tom", 44: "hihat", 45: "tom", 46: "hihat", 47: "tom",
             48: "hihat", 49: "cymbal", 50: "cymbal", 51: "cymbal", 52: "cymbal",
             53: "cymbal", 54: "perc", 55: "cymbal", 56: "perc", 57: "cymbal", 58: "cymbal",
             59: "cymbal", 60: "cymbal", 61: "perc"}
_AVL_VELOCITIES = (22, 48, 74, 100, 127)  # one per velocity layer


def _rendered(source: str, font: Path, phrases, *, program: int, bank: int, channel: int
              ) -> list[Clip]:
    return [Clip(source, f"{font.stem}/{phrase.file_id}", phrase.label, audio, GM_RATE)
            for phrase, audio in render_phrases(font, phrases, program=program, bank=bank,
                                                channel=channel)]


def avldrums_jobs(root: Path = SF2_ROOT) -> list[Job]:
    """Every mapped note of both avldrums kits at five velocities."""
    return [Job("avldrums", kit, functools.partial(
        _rendered, "avldrums", root / f"{kit}.sf2",
        drum_hit_phrases(0, AVL_DRUMS, _AVL_VELOCITIES), program=0, bank=0, channel=0))
        for kit in AVL_KITS]


def gm_jobs(source: str, root: Path = SF2_ROOT) -> list[Job]:
    """Melodic phrases per category and program, FX sweeps, drum hits per kit (FluidR3's
    variation kits too) and grooves per main kit."""
    font, seed = root / GM_FONTS[source], _SEED + len(source)
    jobs = [Job(source, f"{category} p{program}", functools.partial(
        _rendered, source, font, melodic_phrases(category, program, seed=seed),
        program=program, bank=0, channel=0))
        for category, programs in PROGRAMS.items() for program in programs]
    jobs += [Job(source, f"sweep p{program}", functools.partial(
        _rendered, source, font, sweep_phrases(program, seed=seed), program=program, bank=0,
        channel=0)) for program in SWEEP_PROGRAMS]
    variations = FLUID_KITS if source == "fluidr3" else ()
    jobs += [Job(source, f"kit {kit}", functools.partial(
        _rendered, source, font, drum_hit_phrases(kit, GM_DRUMS, (100,))
        + (drum_loop_phrases(kit, seed=seed) if kit in GM_KITS else []), program=kit,
        bank=128, channel=DRUM_CHANNEL))
        for kit in GM_KITS + variations]
    return jobs


# -- the kit synthesiser ---------------------------------------------------------------------

#: Kit seeds start here, far from the small seeds tests and benchmarks use for held-out kits.
CORPUS_SEED_BASE = 10_000
_SYNTH_TEMPI = (120.0, 124.0, 128.0, 132.0, 136.0, 140.0, 145.0, 150.0, 174.0)
_SYNTH_KEYS = ("A minor", "F minor", "C# minor", "D minor", "G minor", "E minor",
               "C major", "F# minor", "A# minor", "G major", "B minor")


def _synth_kit(index: int) -> list[Clip]:
    from daemon.synth import synthesize_kit
    from daemon.synth.fx import synth_crackle

    seed = CORPUS_SEED_BASE + index
    samples = synthesize_kit(bpm=_SYNTH_TEMPI[index % len(_SYNTH_TEMPI)],
                             key=_SYNTH_KEYS[index % len(_SYNTH_KEYS)], seed=seed,
                             names="anonymous", bars=(1, 2, 4)[index % 3])
    clips = [Clip("synth", f"kit{index:02d}/{sample.name}", sample.category, sample.audio,
                  sample.sample_rate) for sample in samples]
    crackle = synth_crackle(sample_rate=44100, seconds=2.0 + index % 4 * 2.0, seed=seed)
    return clips + [Clip("synth", f"kit{index:02d}/crackle", "atmo", crackle, 44100)]


def synth_jobs(kits: int = 12) -> list[Job]:
    """`kits` anonymous synthesised kits (tempi, keys and loop lengths vary) and a vinyl
    crackle bed each (an atmosphere a renderer must not take for a hi-hat)."""
    return [Job("synth", f"kit {index}", functools.partial(_synth_kit, index))
            for index in range(kits)]


# -- all of them ---------------------------------------------------------------------------

#: Source name → the Debian packages it comes from (none: generated here).
PACKAGES = {"sonic-pi": ("sonic-pi-samples",), "avldrums": ("avldrums.lv2-soundfont",),
            "timgm6mb": ("timgm6mb-soundfont",), "fluidr3": ("fluid-soundfont-gm",),
            "lmms": ("lmms-common",), "hydrogen": ("hydrogen-drumkits", "hydrogen-data"),
            "synth": ()}


def all_jobs() -> list[Job]:
    """Every job of every source, in a fixed order."""
    lmms = {truth.rel_path: truth.category for truth in lmms_ground_truth()}
    return [*_file_jobs("sonic-pi", SONIC_PI_ROOT, sonic_pi_labels()),
            *avldrums_jobs(), *gm_jobs("timgm6mb"), *gm_jobs("fluidr3"),
            *_file_jobs("lmms", LMMS_ROOT, lmms),
            *_file_jobs("hydrogen", HYDROGEN_ROOT, hydrogen_labels()), *synth_jobs()]


def missing_sources() -> list[str]:
    """Packages whose files are not installed (a build needs every one)."""
    paths = {"sonic-pi-samples": SONIC_PI_ROOT, "lmms-common": LMMS_ROOT,
             "avldrums.lv2-soundfont": SF2_ROOT / f"{AVL_KITS[0]}.sf2",
             "timgm6mb-soundfont": SF2_ROOT / GM_FONTS["timgm6mb"],
             "fluid-soundfont-gm": SF2_ROOT / GM_FONTS["fluidr3"],
             "hydrogen-drumkits": HYDROGEN_ROOT / "ForzeeStereo" / "drumkit.xml",
             "hydrogen-data": HYDROGEN_ROOT / "GMRockKit" / "drumkit.xml"}
    return [package for package, path in paths.items() if not path.exists()]
