"""Measure ingest analysis accuracy and speed.

    python bench/accuracy.py [--json] [--kits N]

(a) Leave one corpus out (`loco`): the shipped classifier's recipe trained on every source
    of ``daemon/ingest/data/base_corpus.npz`` but one, tested on the recordings of the one
    left out, for every source; per-category recall and the pooled confusion matrix.
(b) Synthesised kits (`daemon.synth`) at several tempi, keys and seeds, with ground truth.
    Descriptive names measure the name rules; anonymous names measure audio alone, with the
    classifier trained on the corpus without its synthesised source (so no synthesised
    kit is in training, and seeds 1..N are disjoint from the corpus's >= 10000 anyway).
(c) Debian's lmms-common samples (/usr/share/lmms/samples): categories from their folders
    (hand-checked per file where a folder mixes categories, see
    `corpus_sources.lmms_ground_truth`). lmms names carry no tempo or key, so BPM and key
    are measured on (b) only. Category from audio alone is measured twice, both with the
    corpus minus lmms: as is (a fresh install meeting lmms), and "learning from named
    stems": stratified 5-fold cross-validation where the classifier also learns the other
    four folds' stems with the category their *names* give (`category_from_name`, so naming
    mistakes are learnt too, as in the daemon), predicting the held-out fold from audio.
Key method comparison: chroma + EDMA vs Krumhansl vs Temperley profiles on the tonal
loops of (b) and on numpy chord progressions in all 24 keys. (Essentia, the reference
implementation of EDMA, is not installed; the profiles are used with our own chroma.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kit_accuracy  # noqa: E402
import loco  # noqa: E402
from corpus_sources import LMMS_ROOT, Truth, lmms_ground_truth  # noqa: E402

from daemon.ingest.analyse import analyse_stem  # noqa: E402
from daemon.ingest.classify import CategoryClassifier, category_from_name  # noqa: E402
from daemon.ingest.corpus import BASE_CORPUS, load_corpus  # noqa: E402
from daemon.ingest.features import key_chroma, prepare  # noqa: E402
from daemon.ingest.key import estimate_key  # noqa: E402
from daemon.ingest.probe import decode_audio  # noqa: E402
from daemon.ingest.rules import load_analysis_rules  # noqa: E402
from daemon.keys import PROFILES, TONICS, parse_key  # noqa: E402
from daemon.synth import synthesize_kit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SYNTH_SPECS = ((100.0, "C major"), (124.0, "D minor"), (128.0, "A minor"), (135.0, "E minor"),
               (140.0, "F# minor"), (174.0, "G minor"), (122.0, "A# major"), (145.0, "F minor"))

def chord_progression(key: str, *, seconds: float = 6.0, rate: int = 22050) -> np.ndarray:
    """Saw-triad loop i-iv-v-i (natural minor) or I-IV-V-I (major) with a root bass."""
    tonic, mode = parse_key(key)
    steps = ((0, 3, 7), (5, 8, 12), (7, 10, 14), (0, 3, 7)) if mode == "minor" else (
        (0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7))
    chord_len = int(seconds * rate / 4)
    t = np.arange(chord_len) / rate
    out = []
    for chord in steps:
        notes = [48 + tonic + chord[0] - 12] + [60 + tonic + s for s in chord]
        wave = sum(((t * 440 * 2 ** ((n - 69) / 12)) % 1.0 - 0.5) for n in notes)
        out.append(wave * np.exp(-t * 0.5))
    return (0.2 * np.concatenate(out)).astype(np.float32)[None, :]


def measure_synth(kits: int, rules, classifier) -> dict:
    counts = {name: [0, 0] for name in ("category_names", "category_audio", "kind",
                                        "bpm_loops", "key_names")}
    key_scores = {profile: [] for profile in PROFILES}
    analysed_key = []
    tags = {"hits": 0, "given": 0, "expected": 0}  # audio tags vs synth truth, shared words
    vocabulary = set(rules.tag_phrases)
    seconds = elapsed = 0.0
    for index in range(kits):
        bpm, key = SYNTH_SPECS[index % len(SYNTH_SPECS)]
        named = synthesize_kit(bpm=bpm, key=key, seed=index + 1)
        anonymous = synthesize_kit(bpm=bpm, key=key, seed=index + 1, names="anonymous")
        for with_name, without in zip(named, anonymous):
            started = time.perf_counter()
            blind = analyse_stem(without.audio, without.sample_rate, name=without.name,
                                 rules=rules, classifier=classifier)
            elapsed += time.perf_counter() - started
            seconds += without.audio.shape[1] / without.sample_rate
            told = analyse_stem(with_name.audio, with_name.sample_rate, name=with_name.name,
                                rules=rules, classifier=classifier)
            _count(counts["category_names"], told.category == with_name.category)
            _count(counts["category_audio"], blind.category == without.category)
            _count(counts["kind"], blind.kind == without.kind)
            expected = set(without.tags) & vocabulary
            tags["hits"] += len(expected & set(blind.tags))
            tags["given"] += len(set(blind.tags))
            tags["expected"] += len(expected)
            if without.kind == "loop":
                _count(counts["bpm_loops"], blind.bpm is not None
                       and abs(blind.bpm - without.bpm) <= 1.0)
            if without.key:
                _count(counts["key_names"], told.key == with_name.key)
                analysed_key.append(kit_accuracy.mirex_key_score(blind.key, without.key))
                pitch = key_chroma(y=prepare(audio=without.audio,
                                             sample_rate=without.sample_rate).mono)
                for profile in PROFILES:
                    estimate, _ = estimate_key(chroma=pitch, profile=profile)
                    key_scores[profile].append(kit_accuracy.mirex_key_score(estimate, without.key))
    result = {name: _rate(value) for name, value in counts.items()}
    result["key_weighted_audio"] = float(np.mean(analysed_key))
    result["key_profiles_tonal_loops"] = {p: float(np.mean(s)) for p, s in key_scores.items()}
    result["x_realtime_one_core"] = seconds / elapsed
    result["tags_audio_recall"] = tags["hits"] / max(tags["expected"], 1)
    result["tags_audio_precision"] = tags["hits"] / max(tags["given"], 1)
    result["stems"] = counts["kind"][1]
    return result


def measure_chords() -> dict:
    scores = {profile: [] for profile in PROFILES}
    for tonic in TONICS:
        for mode in ("major", "minor"):
            key = f"{tonic} {mode}"
            pitch = key_chroma(y=chord_progression(key)[0])
            for profile in PROFILES:
                estimate, _ = estimate_key(chroma=pitch, profile=profile)
                scores[profile].append(kit_accuracy.mirex_key_score(estimate, key))
    return {profile: float(np.mean(values)) for profile, values in scores.items()}


def measure_lmms(rules, classifier) -> dict:
    truths = lmms_ground_truth()
    counts = {name: [0, 0] for name in ("category_names", "category_audio", "kind_names",
                                        "kind_audio")}
    misses, loops = [], []
    seconds = elapsed = 0.0
    for truth in truths:
        started = time.perf_counter()
        decoded = decode_audio(LMMS_ROOT / truth.rel_path)
        blind = analyse_stem(decoded.audio, decoded.sample_rate, name="sample.ogg",
                             rules=rules, classifier=classifier)
        elapsed += time.perf_counter() - started
        seconds += decoded.frames / decoded.sample_rate
        told = analyse_stem(decoded.audio, decoded.sample_rate, name=truth.rel_path,
                            rules=rules, classifier=classifier)
        _count(counts["category_names"], told.category == truth.category)
        _count(counts["category_audio"], blind.category == truth.category)
        if truth.kind:
            _count(counts["kind_names"], told.kind == truth.kind)
            _count(counts["kind_audio"], blind.kind == truth.kind)
        if told.category != truth.category:
            misses.append(f"{truth.rel_path}: {told.category} ({told.category_source}), "
                          f"truth {truth.category}")
        if told.kind == "loop":
            loops.append(f"{truth.rel_path}: {told.bpm} BPM ({told.bpm_source})")
    result = {name: _rate(value) for name, value in counts.items()}
    result.update(stems=len(truths), name_misses=misses, loop_tempi=loops,
                  x_realtime_one_core_with_decode=seconds / elapsed)
    return result


def lmms_vectors(truths: list[Truth], root: Path = LMMS_ROOT) -> np.ndarray:
    """The classifier's feature vector of every labelled lmms sample, ``(n, d)``."""
    return np.stack([prepare(audio=decoded.audio, sample_rate=decoded.sample_rate).vector
                     for decoded in (decode_audio(root / truth.rel_path) for truth in truths)])


def cross_validate_named(classifier: CategoryClassifier, vectors: np.ndarray,
                         truths: list[Truth], rules, *, folds: int = 5, seed: int = 0
                         ) -> list[str]:
    """Audio-only predictions of every sample by ``classifier.with_examples(...)`` of the
    other folds' samples, labelled by their names (unnamed ones are not learnt from)."""
    from sklearn.model_selection import StratifiedKFold

    truth = np.array([t.category for t in truths])
    guesses = [category_from_name(t.rel_path, rules) for t in truths]
    named = np.array([g.category if g else "" for g in guesses])
    predictions = [""] * len(truths)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # lmms has two atmo and two chord samples: that is fine
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(splitter.split(vectors, truth))
    for train, test in splits:
        train = train[named[train] != ""]
        learnt = classifier.with_examples(vectors[train], named[train].tolist())
        for index in test:
            predictions[index] = learnt.predict(vectors[index])[0]
    return predictions


def measure_lmms_learning(rules, classifier: CategoryClassifier) -> dict:
    truths = lmms_ground_truth()
    predictions = cross_validate_named(classifier, lmms_vectors(truths), truths, rules)
    per_category = {}
    for category in sorted({t.category for t in truths}):
        guessed = [p for t, p in zip(truths, predictions) if t.category == category]
        wrong = Counter(p for p in guessed if p != category)
        per_category[category] = {"n": len(guessed),
                                  "recall": guessed.count(category) / len(guessed),
                                  "confused_with": dict(wrong.most_common(3))}
    right = sum(t.category == p for t, p in zip(truths, predictions))
    return {"category_audio_cv": right / len(truths), "per_category": per_category}


def _count(pair: list[int], ok: bool) -> None:
    pair[0] += int(ok)
    pair[1] += 1


def _rate(pair: list[int]) -> float | None:
    return pair[0] / pair[1] if pair[1] else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--kits", type=int, default=8, help="synthesised test kits")
    args = parser.parse_args(argv)
    threadpool_limits(1)  # one core per worker, as in the ingest pool
    rules = load_analysis_rules(ROOT / "rules")
    started = time.perf_counter()
    CategoryClassifier.load(BASE_CORPUS)  # what a fresh library pays before its first stem
    load_seconds = time.perf_counter() - started
    corpus = load_corpus()
    folds = loco.leave_one_source_out(corpus)
    report = {"classifier_load_seconds": load_seconds, "loco": loco.summary(folds),
              "synth": measure_synth(args.kits, rules, loco.held_out(corpus, "synth")),
              "chords_24_keys": measure_chords(),
              "kits": kit_accuracy.measure(len(kit_accuracy.SPECS),
                                           classifier=loco.held_out(corpus, "synth"))}
    if LMMS_ROOT.is_dir():
        without_lmms = loco.held_out(corpus, "lmms")
        report["lmms"] = measure_lmms(rules, without_lmms)
        report["lmms"].update(measure_lmms_learning(rules, without_lmms))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(loco.markdown(folds), end="\n\n")
        print_table(report)
        print("\nloop tempo and key per kit (bench/kit_accuracy.py):")
        kit_accuracy.print_table(report["kits"])
    return 0


def print_table(report: dict) -> None:
    synth, lmms = report["synth"], report.get("lmms", {})
    rows = [
        ("loop BPM within 1 BPM, audio/length only", synth["bpm_loops"], None, ">= 0.98"),
        ("key MIREX weighted, tonal loops, audio", synth["key_weighted_audio"], None,
         ">= 0.85"),
        ("key from names (exact)", synth["key_names"], None, ""),
        ("category with names", synth["category_names"], lmms.get("category_names"),
         ">= 0.95"),
        ("category from audio, corpus without this source", synth["category_audio"],
         lmms.get("category_audio"), ">= 0.85"),
        ("category from audio, + named stems (5-fold)", None,
         lmms.get("category_audio_cv"), ">= 0.85"),
        ("kind from audio alone", synth["kind"], lmms.get("kind_audio"), ""),
        ("kind with names", None, lmms.get("kind_names"), ""),
        ("tags from audio: recall of synth tags", synth["tags_audio_recall"], None, ""),
        ("tags from audio: precision vs synth tags", synth["tags_audio_precision"], None,
         "(truth lists only 2-3 tags)"),
    ]
    print(f"{'measure':44s} {'synth':>8s} {'lmms':>8s}  target")
    for label, a, b, target in rows:
        print(f"{label:44s} {_show(a):>8s} {_show(b):>8s}  {target}")
    print(f"\nstems: synth {synth['stems']}, lmms {lmms.get('stems', 0)}; classifier load "
          f"{report['classifier_load_seconds']:.2f} s")
    print(f"speed, one core: synth {synth['x_realtime_one_core']:.0f}x realtime (analysis), "
          f"lmms {lmms.get('x_realtime_one_core_with_decode', 0):.0f}x (decode + analysis)")
    print("\nkey profiles (MIREX weighted): profile  synth-tonal-loops  chords-24-keys")
    for profile, score in synth["key_profiles_tonal_loops"].items():
        print(f"  {profile:10s} {score:8.3f} {report['chords_24_keys'][profile]:8.3f}")
    if lmms.get("per_category"):
        print("\nlmms, audio alone, learning from named stems (5-fold): recall per category")
    for category, row in lmms.get("per_category", {}).items():
        confused = ", ".join(f"{name} {count}" for name, count in row["confused_with"].items())
        print(f"  {category:10s} {row['recall']:6.2f}  n={row['n']:<3d} {confused}")
    for line in lmms.get("name_misses", []):
        print(f"  lmms miss: {line}")
    for line in lmms.get("loop_tempi", []):
        print(f"  lmms loop: {line}")


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
