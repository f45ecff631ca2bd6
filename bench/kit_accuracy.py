"""Loop tempo and key per stem and after the kit pass, on synthesised kits with traps.

    python bench/kit_accuracy.py [--json] [--kits N]

    python bench/kit_accuracy.py --first-seed 500 --misses    # the tuning kits

Each kit (`daemon.synth.traps.trap_kit`, anonymous file names) is analysed stem by stem
(`analyse_stem`; categories by the classifier trained without the synthesised corpus) and
then weighed as a kit (`kitpass.kit_updates`, as the ingest does after the last stem).
Tempi include octave traps (85, 92, 76 BPM: 4 bars at 85 are 8 at 170 and the hats pulse at
170), and 5:4 and 3:2 cross-rhythm loops whose length fits two tempi. Kit names carry no
hint ("Export N"), or a genre word whose tempo range holds the kit's tempo (from
``rules/genres``). Seeds 1..N are reported; the thresholds were tuned on seeds 500-579.

Reported: loop BPM within 1 BPM of the truth, and MIREX-weighted key score of the tonal loops
(same 1, fifth 0.5, relative 0.3, parallel 0.2), per stem and after the kit pass, with the
share of keys marked for checking by ear and how often those were wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
from loco import held_out
from threadpoolctl import threadpool_limits

from daemon.compose.rules import load_rules
from daemon.ingest.analyse import AnalysisResult, analyse_stem
from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.corpus import load_corpus
from daemon.ingest.kitpass import KitRules, kit_updates, load_kit_rules
from daemon.ingest.rules import load_analysis_rules
from daemon.keys import TONICS, parse_key
from daemon.store.records import COLUMN_NAMES, StemRecord
from daemon.synth.traps import trap_kit

ROOT = Path(__file__).resolve().parents[1]
#: (bpm, traps, bars): octave-ambiguous tempi, cross-rhythm traps, 1- to 8-bar loops.
SPECS = ((85.0, ("5:4",), 4), (128.0, ("5:4", "3:2"), 4), (174.0, ("3:2",), 2),
         (92.0, (), 4), (140.0, ("5:4",), 4), (120.0, ("3:2",), 2), (100.0, ("3:2",), 4),
         (76.0, (), 2), (165.0, ("5:4",), 4), (124.0, (), 8), (110.0, ("5:4",), 4),
         (150.0, ("3:2",), 1))
_RECORD_NAMES = {column: name for name, column in COLUMN_NAMES.items()}


def mirex_key_score(estimate: str | None, truth: str) -> float:
    """MIREX weighted key score: same 1, fifth 0.5, relative 0.3, parallel 0.2."""
    if estimate is None:
        return 0.0
    (tonic, mode), (true_tonic, true_mode) = parse_key(estimate), parse_key(truth)
    interval = (tonic - true_tonic) % 12
    if mode == true_mode:
        return {0: 1.0, 7: 0.5, 5: 0.5}.get(interval, 0.0)
    relative = 9 if true_mode == "major" else 3  # C major ↔ A minor
    return 0.3 if interval == relative else 0.2 if interval == 0 else 0.0


def kit_name(bpm: float, index: int, genres: dict[str, tuple[float, float]], *,
             hinted: bool) -> str:
    """"Export N", or a genre word whose tempo range holds `bpm` ("Lofi Export N")."""
    if not hinted:
        return f"Export {index}"
    fitting = sorted(name for name, (low, high) in genres.items() if low <= bpm <= high)
    return f"{fitting[index % len(fitting)].replace('_', ' ').title()} Export {index}"


def settle(results: list[tuple[str, AnalysisResult]], kit: str,
           rules: KitRules) -> list[StemRecord]:
    """The stems as the kit pass leaves them (what `kitpass.settle_kit` would store)."""
    records = [StemRecord(id=index, kit=kit, path=Path(name), rel_path=name,
                          content_hash=str(index),
                          **{item.name: getattr(result, item.name)
                             for item in fields(AnalysisResult)})
               for index, (name, result) in enumerate(results)]
    updates = kit_updates(records, kit=kit, rules=rules)
    return [_updated(record, updates.get(record.id, {})) for record in records]


def _updated(record: StemRecord, columns: dict) -> StemRecord:
    values = {item.name: getattr(record, item.name) for item in fields(StemRecord)}
    values.update({_RECORD_NAMES.get(column, column): value for column, value in columns.items()})
    return StemRecord(**values)


def without_synth() -> CategoryClassifier:
    """The shipped classifier's recipe trained on every corpus source but the synthesiser:
    the kits measured here are synthesised."""
    return held_out(load_corpus(), "synth")


def measure(kits: int, *, first_seed: int = 1, misses: list[str] | None = None,
            classifier: CategoryClassifier | None = None) -> dict:
    """Tally the measures over `kits` kits (see the module docstring); `misses` collects a
    line per wrong loop tempo."""
    rules = load_analysis_rules(ROOT / "rules")
    genres = {genre.name: (genre.bpm_min, genre.bpm_max)
              for genre in load_rules(ROOT / "rules").genres.values()}
    kit_rules = load_kit_rules(ROOT / "rules", {name: bounds for name, bounds in genres.items()})
    classifier = classifier or without_synth()
    rng = np.random.default_rng(2024)
    tally = {name: [] for name in ("bpm_stem", "bpm_kit_plain", "bpm_kit_genre", "key_stem",
                                   "key_kit", "key_checked", "key_checked_wrong")}
    for index in range(kits):
        bpm, traps, bars = SPECS[index % len(SPECS)]
        key = f"{TONICS[rng.integers(12)]} {('major', 'minor')[rng.integers(2)]}"
        samples = trap_kit(bpm=bpm, key=key, seed=first_seed + index, traps=traps, bars=bars)
        results = [(s.name, analyse_stem(s.audio, s.sample_rate, name=s.name, rules=rules,
                                         classifier=classifier)) for s in samples]
        truth = {s.name: s for s in samples}
        for name, result in results:
            if truth[name].kind == "loop":
                tally["bpm_stem"].append(bpm_right(result.bpm, truth[name].bpm))
            if truth[name].key and truth[name].kind == "loop":
                tally["key_stem"].append(mirex_key_score(result.key, truth[name].key))
        for hinted, label in ((False, "bpm_kit_plain"), (True, "bpm_kit_genre")):
            settled = settle(results, kit_name(bpm, index, genres, hinted=hinted), kit_rules)
            for record in settled:
                sample = truth[record.rel_path]
                if sample.kind == "loop":
                    tally[label].append(bpm_right(record.bpm, sample.bpm))
                    if misses is not None and not tally[label][-1]:
                        misses.append(f"{label} {record.kit}: {sample.category} {sample.name} "
                                      f"true {sample.bpm:g}, got {record.bpm} "
                                      f"({record.bpm_source}; pulse {record.pulse_bpm})")
                if sample.key and sample.kind == "loop" and not hinted:
                    score = mirex_key_score(record.key, sample.key)
                    tally["key_kit"].append(score)
                    tally["key_checked"].append(not record.key_trusted)
                    if not record.key_trusted:
                        tally["key_checked_wrong"].append(score < 1.0)
    return {name: (float(np.mean(values)) if values else None, len(values))
            for name, values in tally.items()}


def bpm_right(estimate: float | None, truth: float) -> bool:
    """Whether a loop's tempo is within 1 BPM of the truth (None: no tempo, wrong)."""
    return estimate is not None and abs(estimate - truth) <= 1.0


def print_table(report: dict) -> None:
    rows = (("loop BPM within 1 BPM, per stem (audio, length)", "bpm_stem", ">= 0.99"),
            ("  after the kit pass, kit name without hints", "bpm_kit_plain", ">= 0.99"),
            ("  after the kit pass, genre word in kit name", "bpm_kit_genre", ">= 0.99"),
            ("key MIREX weighted, tonal loops, per stem", "key_stem", ">= 0.92"),
            ("  after the kit pass (kit key prior)", "key_kit", ">= 0.92"),
            ("  share of keys marked to check by ear", "key_checked", ""),
            ("  of those, wrong", "key_checked_wrong", ""))
    print(f"{'measure':50s} {'value':>7s} {'n':>5s}  target")
    for label, name, target in rows:
        value, count = report[name]
        shown = "-" if value is None else f"{value:.3f}"
        print(f"{label:50s} {shown:>7s} {count:5d}  {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--kits", type=int, default=len(SPECS), help="synthesised kits")
    parser.add_argument("--first-seed", type=int, default=1,
                        help="seed of the first kit (500 and up: the tuning kits)")
    parser.add_argument("--misses", action="store_true", help="list every wrong loop tempo")
    args = parser.parse_args(argv)
    threadpool_limits(1)
    misses: list[str] = []
    report = measure(args.kits, first_seed=args.first_seed, misses=misses)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_table(report)
    for line in misses if args.misses else ():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
