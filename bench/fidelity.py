"""Render fidelity on a mixed library, judged against the synthesiser's ground truth.

Builds a library of construction kits of many genres with the kit synthesiser: genre kits
named like commercial packs, three kits with anonymous file names (their genre known only
here), one kit whose file names state a wrong key (a fifth off, as real packs do), and a
vinyl-crackle noise bed named like a hi-hat. Every kit is ingested by the real engine; one
prompt per genre is rendered; each render is judged from its JSON report and its audio
against what the bench *made*, never against the engine's own labels:

* kits used per track, and the share of stems from kits of the prompt's genre family;
* tonal loops outside the plan's scale (true key of the audio + the applied shift);
* loops playing at a wrong tempo (true tempo × applied speed ratio vs the plan's tempo);
* sections off the 4-bar grid; the noise bed played in a drum lane;
* kick dominance in four-on-the-floor genres: in every section with a kick, the strongest
  periodicity of the full-band onset envelope (Fourier tempogram over the section, 60–200
  BPM in 0.25 BPM steps) is within 3 % of the plan's tempo;
* whether drop 2 differs from drop 1 (a lane added, removed or swapped).

Run: python bench/fidelity.py [--json] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.config import load_config  # noqa: E402
from daemon.synth.fx import synth_crackle  # noqa: E402
from daemon.synth.kit import KitSample, synthesize_kit, write_kit_folder  # noqa: E402
from daemon.work import Engine  # noqa: E402

PITCHES = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8,
           "A": 9, "A#": 10, "B": 11, "Db": 1, "Eb": 3, "Gb": 6, "Ab": 8, "Bb": 10}


@dataclass(frozen=True)
class KitSpec:
    """One kit of the mixed library: its folder name and the truth only the bench knows."""

    name: str
    family: str
    bpm: float
    key: str
    names: str = "descriptive"
    wrong_key: str | None = None  # file names claim this key instead of the true one
    noise_hat: bool = False  # add a crackle bed named like a hi-hat


LIBRARY = (
    KitSpec("Warehouse Techno Vol 1", "techno", 138, "A minor"),
    KitSpec("Berlin Industrial Techno", "techno", 132, "F minor"),
    KitSpec("Deep House Essentials", "house", 122, "C minor"),
    KitSpec("Chicago House Grooves", "house", 124, "G minor"),
    KitSpec("Liquid DnB Sessions", "dnb", 174, "E minor"),
    KitSpec("Trance Anthems", "trance", 138, "G minor", wrong_key="D minor"),
    KitSpec("Boom Bap Hip Hop", "hiphop", 90, "D minor"),
    KitSpec("Lo-Fi Beats Tape", "hiphop", 85, "F major", noise_hat=True),
    KitSpec("Dubstep Wobble Pack", "dubstep", 140, "F minor"),
    KitSpec("Electro Funk Machines", "electro", 128, "A minor"),
    KitSpec("Kit10", "dnb", 172, "A minor", names="anonymous"),
    KitSpec("ST_Pack_07", "house", 123, "D minor", names="anonymous"),
    KitSpec("Audio Export 3", "techno", 135, "C minor", names="anonymous"),
)

#: One prompt per genre the rules know, with the family a listener would expect.
PROMPTS = (
    ("driving industrial techno 138 bpm", "techno"),
    ("aggressiver düsterer Techno 135 bpm", "techno"),
    ("minimal techno 126 bpm", "techno"),
    ("deep house 122 bpm, 4 minutes", "house"),
    ("house 124 bpm", "house"),
    ("drum and bass 174 bpm", "dnb"),
    ("uplifting trance 138 bpm", "trance"),
    ("boom bap hip hop 90 bpm", "hiphop"),
    ("lo-fi hip hop 85 bpm", "hiphop"),
    ("dubstep 140 bpm", "dubstep"),
    ("electro 128 bpm", "electro"),
)
FOUR_ON_FLOOR = frozenset({"techno", "house", "trance"})
NOISE_HAT = "Drums/HiHats/TE_HiHat_Dusty_03.wav"


def build_kit(spec: KitSpec, *, seed: int) -> list[KitSample]:
    """The kit's samples with names as the pack would ship them (possibly lying)."""
    samples = synthesize_kit(bpm=spec.bpm, key=spec.key, seed=seed, names=spec.names)
    if spec.wrong_key:
        true, claimed = short_key(spec.key), short_key(spec.wrong_key)
        samples = [replace(s, name=s.name.replace(f"_{true}.", f"_{claimed}."))
                   for s in samples]
    if spec.noise_hat:
        crackle = synth_crackle(sample_rate=44100, seconds=4.0, seed=seed)
        samples.append(KitSample(name=NOISE_HAT, audio=crackle, sample_rate=44100,
                                 category="atmo", kind="oneshot", bpm=None, key=None,
                                 tags=("noise",)))
    return samples


def short_key(key: str) -> str:
    tonic, mode = key.split()
    return tonic + ("m" if mode == "minor" else "maj")


def pitch_class(key: str) -> tuple[int, str]:
    tonic, mode = key.split()
    return PITCHES[tonic], mode


def in_scale(true_key: str, semitones: int, plan_key: str) -> bool:
    """True when the shifted loop's key is the plan's key or its relative (same notes)."""
    tonic, mode = pitch_class(true_key)
    plan_tonic, plan_mode = pitch_class(plan_key)
    tonic = (tonic + semitones) % 12
    if mode == plan_mode:
        return tonic == plan_tonic
    relative = (tonic + 3) % 12 if mode == "minor" else (tonic - 3) % 12
    return relative == plan_tonic


def kick_leads(audio: np.ndarray, rate: int, *, bpm: float) -> tuple[bool, float]:
    """Is the strongest 60–200 BPM periodicity of the onset envelope the plan's tempo?

    A Fourier tempogram over the whole passage, evaluated every 0.25 BPM: librosa's default
    window (512 onset frames, 3 s) has 20-BPM bins, so 126 or 135 BPM could never come
    within 3 % of its nearest bin and a 3-step pattern at 172.5 BPM could hide in the
    181.7 BPM bin."""
    hop = 256
    envelope = librosa.onset.onset_strength(y=audio.mean(axis=0), sr=rate, hop_length=hop)
    envelope = (envelope - envelope.mean()) * np.hanning(envelope.size)
    times = np.arange(envelope.size) * hop / rate
    bpms = np.arange(60.0, 200.0 + 1e-9, 0.25)
    strength = np.abs(np.exp(-2j * np.pi * np.outer(bpms / 60.0, times)) @ envelope)
    strongest = float(bpms[np.argmax(strength)])
    return abs(strongest / bpm - 1) < 0.03, strongest


def judge(report: dict, audio: np.ndarray, rate: int, *, truth: dict, family: str) -> dict:
    """Every fidelity figure of one render (see the module docstring)."""
    plan = report["plan"]
    stems = report["stems"]
    kit_family = {kit: spec.family for kit, spec in truth["kits"].items()}
    unique = {(s["kit"], s["file"], s["semitones"], s["stretch_ratio"]): s for s in stems}
    from_family = sum(kit_family.get(s["kit"]) == family for s in stems)
    off_key, off_tempo, noise_in_drums = [], [], 0
    for stem in unique.values():
        sample = truth["samples"].get((stem["kit"], stem["file"]))
        if sample is None:
            continue
        if sample.key and sample.kind == "loop" and not in_scale(sample.key, stem["semitones"],
                                                                 plan["key"]):
            off_key.append(f"{stem['kit']}/{stem['file']}")
        if sample.kind == "loop" and sample.bpm:
            played = sample.bpm * stem["stretch_ratio"]
            if abs(played - plan["bpm"]) > 1.0:
                off_tempo.append(f"{stem['file']} at {played:.1f}")
        noise_in_drums += stem["file"] == NOISE_HAT and stem["category"] in (
            "hihat", "snare", "clap", "kick", "perc", "cymbal", "tom")
    kick, kick_misses = (_kick_dominance(report, audio, rate) if family in FOUR_ON_FLOOR
                         else (None, []))
    return {
        "prompt": plan["prompt"], "genre": plan["genre"],
        "kits": len({s["kit"] for s in stems}),
        "family_share": round(from_family / max(1, len(stems)), 3),
        "tonal_off_scale": len(off_key), "off_scale_files": off_key,
        "loops_off_tempo": len(off_tempo), "off_tempo_files": off_tempo,
        "sections_off_grid": sum(s["bars"] % 4 != 0 for s in plan["structure"]),
        "section_bars": [s["bars"] for s in plan["structure"]],
        "noise_bed_in_drum_lane": noise_in_drums,
        "kick_leads": kick, "kick_misses": kick_misses,
        "drop2_differs": _drops_differ(report),
    }


def _kick_dominance(report: dict, audio: np.ndarray, rate: int) -> tuple[str, list[str]]:
    """``"k/n"``: sections with a kick whose strongest pulse is the kick's tempo; and each
    section where another pulse is strongest, with that pulse."""
    bpm = report["plan"]["bpm"]
    starts = [s["start_seconds"] for s in report["sections"]] + [audio.shape[1] / rate]
    kick_sections = {s["section"] for s in report["stems"] if s["category"] == "kick"}
    total, misses = 0, []
    for index, section in enumerate(report["sections"]):
        if section["section"] not in kick_sections:
            continue
        begin, end = (round(t * rate) for t in starts[index:index + 2])
        total += 1
        led, strongest = kick_leads(audio[:, begin:end], rate, bpm=bpm)
        if not led:
            misses.append(f"{section['section']} ({strongest:g} BPM)")
    return f"{total - len(misses)}/{total}", misses


def _drops_differ(report: dict) -> bool | None:
    """True when the first section of drop 2 plays other lanes or stems than drop 1's."""
    drops: dict[int, str] = {}
    for section in report["plan"]["structure"]:
        match = re.match(r"drop\s*(\d*)", section["section"].casefold())
        if match:
            drops.setdefault(int(match.group(1) or 1), section["section"])
    if 1 not in drops or 2 not in drops:
        return None
    played = {name: {(s["lane"], s["stem_id"]) for s in report["stems"] if s["section"] == name}
              for name in (drops[1], drops[2])}
    return played[drops[1]] != played[drops[2]]


def build_library(root: Path, *, seed: int) -> dict:
    """Write every kit into `root/inbox`; return the truth by kit and by (kit, file)."""
    samples, kits = {}, {}
    for index, spec in enumerate(LIBRARY):
        kit = build_kit(spec, seed=seed + index)
        write_kit_folder(kit, root / "inbox" / spec.name)
        kits[spec.name] = spec
        samples.update({(spec.name, s.name): s for s in kit})
    return {"kits": kits, "samples": samples}


def run(seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
        truth = build_library(root, seed=seed)
        engine = Engine(load_config(root / "config.toml"))
        started = time.perf_counter()
        for spec in LIBRARY:
            engine.ingest(root / "inbox" / spec.name)
        ingest_seconds = time.perf_counter() - started
        rows, render_seconds = [], []
        for index, (prompt, family) in enumerate(PROMPTS):
            started = time.perf_counter()
            outcome = engine.render_text(prompt, out_wav=root / f"{index}.wav", seed=seed)
            render_seconds.append(time.perf_counter() - started)
            report = json.loads(Path(root / f"{index}.json").read_text())
            audio, rate = sf.read(root / f"{index}.wav", dtype="float32", always_2d=True)
            rows.append(judge(report, audio.T, rate, truth=truth, family=family))
            del outcome
        engine.close()
    return {"stems": len(truth["samples"]), "kits": len(LIBRARY),
            "ingest_seconds": round(ingest_seconds, 1),
            "render_seconds_max": round(max(render_seconds), 2), "renders": rows}


def print_table(result: dict) -> None:
    print(f"mixed library: {result['kits']} kits, {result['stems']} stems "
          f"(ingest {result['ingest_seconds']} s; slowest render {result['render_seconds_max']} s)")
    print("| prompt | kits | genre share | tonal off scale | loops off tempo | off 4-bar grid "
          "| noise as drum | kick leads | drop 2 differs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in result["renders"]:
        print(f"| {row['prompt']} | {row['kits']} | {row['family_share']:.2f} "
              f"| {row['tonal_off_scale']} | {row['loops_off_tempo']} "
              f"| {row['sections_off_grid']} | {row['noise_bed_in_drum_lane']} "
              f"| {row['kick_leads'] or '–'} | {_yes_no(row['drop2_differs'])} |")
    totals = Counter()
    for row in result["renders"]:
        totals["max_kits"] = max(totals["max_kits"], row["kits"])
        totals["off_key"] += row["tonal_off_scale"]
        totals["off_tempo"] += row["loops_off_tempo"]
        totals["off_grid"] += row["sections_off_grid"]
    for row in result["renders"]:
        if row["kick_misses"]:
            print(f"kick does not lead in {row['prompt']}: {', '.join(row['kick_misses'])}")
    share = min(row["family_share"] for row in result["renders"])
    print(f"worst: {totals['max_kits']} kits in a track, genre share {share:.2f}; totals: "
          f"{totals['off_key']} tonal loops off scale, {totals['off_tempo']} loops off tempo, "
          f"{totals['off_grid']} sections off the grid")


def _yes_no(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.seed)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
