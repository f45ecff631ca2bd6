"""The kit pass: a kit's loops share a tempo and its tonal stems mostly a key.

`settle_kit` runs once a kit's stems are committed (at the end of its ingest, after its
re-analysis, after a correction): it reads the kit's stems, weighs their tempo evidence
together (`kit_tempo.resolve_tempi`, with the BPM and genre word in the kit's name), takes
the one-shots by audio that last whole bars at the kit's tempo for loops (`kit_kind`), weighs
the key evidence (`kit_key.resolve_keys`), and writes what changed in one transaction. It is
a pure function of stored evidence (a loop the kit made, ``kind_source = "kit"``, is weighed
as the one-shot its analysis said), so running it again changes nothing; columns the user
corrected are never written (`store.revisions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.categories import DEFAULT_BPM_RANGE, CategoryTable, load_categories
from daemon.ingest.analyse import ANALYSIS_VERSION
from daemon.ingest.key import key_from_name
from daemon.ingest.kit_key import KeyChoice, KeyEvidence, resolve_keys
from daemon.ingest.kit_kind import kit_tempo, loop_by_length
from daemon.ingest.kit_tempo import KitTempoHints, LoopEvidence, mark_single, resolve_tempi
from daemon.ingest.tempo import TempoChoice, name_tempi
from daemon.store import queries, revisions
from daemon.store.records import StemRecord
from daemon.text import tokenize

Phrase = tuple[str, ...]


@dataclass(frozen=True)
class KitRules:
    """What the kit pass reads from ``rules/``: category traits (tonal, preferred loop
    tempi) and the tempo range of each genre word (names and synonyms of
    ``rules/genres/*.toml``, as tokens)."""

    categories: CategoryTable
    genre_tempi: Mapping[Phrase, tuple[float, float]]


def load_kit_rules(rules_dir: Path, genre_tempi: Mapping[str, tuple[float, float]]) -> KitRules:
    """`KitRules` from ``rules_dir/categories.toml`` and the genre words' tempo ranges
    (read by the caller: the genre rules belong to the composer)."""
    return KitRules(categories=load_categories(rules_dir),
                    genre_tempi={tokenize(word): bounds for word, bounds in genre_tempi.items()
                                 if tokenize(word)})


def settle_kit(kit: str, *, library: Path, rules: KitRules) -> int:
    """Weigh the evidence of every stem of `kit` together and store the changes; return
    how many stems changed. A kit with stems still awaiting re-analysis waits for it."""
    records = queries.list_stems(library, kit=kit)
    if any(record.analysis_version < ANALYSIS_VERSION for record in records):
        return 0
    return revisions.update_stems(kit_updates(records, kit=kit, rules=rules))


def kit_updates(records: Sequence[StemRecord], *, kit: str,
                rules: KitRules) -> dict[int, dict[str, Any]]:
    """Stem id → the kind, tempo and key columns the kit's consensus changes."""
    updates: dict[int, dict[str, Any]] = {}
    tempi = _tempo_choices(records, kit, rules)
    kinds = _kind_choices(records, [choice for _, choice in tempi])
    for record, (kind, kind_source), _ in kinds:
        if (kind, kind_source) != (record.kind, record.kind_source):
            updates.setdefault(record.id, {}).update(kind=kind, kind_source=kind_source)
    for record, choice in tempi + [(record, choice) for record, _, choice in kinds]:
        if (choice.bpm, choice.confidence, choice.source, choice.reason) != (
                record.bpm, record.bpm_confidence, record.bpm_source, record.bpm_reason):
            updates.setdefault(record.id, {}).update(
                bpm=choice.bpm, bpm_confidence=choice.confidence, bpm_source=choice.source,
                bpm_reason=choice.reason)
    for record, key in _key_choices(records, kit, rules):
        if (key.key, key.confidence, key.source, key.trusted, key.reason) != (
                record.key, record.key_confidence, record.key_source, record.key_trusted,
                record.key_reason):
            updates.setdefault(record.id, {}).update(
                musical_key=key.key, key_confidence=key.confidence, key_source=key.source,
                key_trusted=key.trusted, key_reason=key.reason)
    return updates


def kit_hints(kit: str, rules: KitRules) -> KitTempoHints:
    """The tempo the kit's name gives (``128 BPM``, a bare ``128``) and the tempo range of
    the longest genre word in it (``Lofi Dreams`` → 60-95)."""
    named, bare = name_tempi(kit)
    tokens = tokenize(kit)
    genre = None
    for phrase, bounds in sorted(rules.genre_tempi.items(), key=lambda item: -len(item[0])):
        if any(tokens[i:i + len(phrase)] == phrase for i in range(len(tokens))):
            genre = bounds
            break
    return KitTempoHints(named_bpm=named, bare_bpm=bare, genre_range=genre)


#: A stem's loop or one-shot, and what decided it.
Kind = tuple[str, str]
_NO_TEMPO = TempoChoice(None, 0.0, "none")


def _tempo_choices(records: Sequence[StemRecord], kit: str,
                   rules: KitRules) -> list[tuple[StemRecord, TempoChoice]]:
    """The kit's loops by their own analysis, each with its tempo from the consensus."""
    loops = [record for record in records if _analysed_kind(record) == "loop"]
    evidence = [LoopEvidence.from_name(
        record.rel_path, duration=record.duration, pulse_bpm=record.pulse_bpm,
        pulse_confidence=record.pulse_confidence, pulse_kicks=record.pulse_kicks,
        user_bpm=record.bpm if record.bpm_source == "user" else None,
        preferred=_bpm_range(record.category, rules)) for record in loops]
    choices = resolve_tempi(evidence, kit_hints(kit, rules))
    if len(choices) == 1:
        choices = [mark_single(choices[0])]
    return list(zip(loops, choices))


def _kind_choices(records: Sequence[StemRecord], loop_tempi: Sequence[TempoChoice]
                  ) -> list[tuple[StemRecord, Kind, TempoChoice]]:
    """The one-shots by their own analysis that are loops at the kit's tempo (the one most of
    `loop_tempi` took) by their length (`kit_kind.loop_by_length`), and those a loop of the
    kit's once but no longer (one-shots again, with no tempo). Other one-shots are left as
    they are."""
    tempo = kit_tempo(loop_tempi)
    changed = []
    for record in records:
        if _analysed_kind(record) != "oneshot":
            continue
        made = record.kind_source == "kit"
        source = "audio" if made else record.kind_source
        loop = None if tempo is None else loop_by_length(record.duration, source, tempo)
        if loop is not None:
            changed.append((record, ("loop", "kit"), loop))
        elif made:
            changed.append((record, ("oneshot", source), _NO_TEMPO))
    return changed


def _analysed_kind(record: StemRecord) -> str:
    """Loop or one-shot as the stem's own analysis said (a loop the kit made was a one-shot)."""
    return "oneshot" if record.kind_source == "kit" else record.kind


def _key_choices(records: Sequence[StemRecord], kit: str,
                 rules: KitRules) -> list[tuple[StemRecord, KeyChoice]]:
    tonal = [record for record in records
             if record.category in rules.categories and rules.categories[record.category].tonal]
    evidence = [KeyEvidence(chroma=record.chroma, named=key_from_name(record.rel_path),
                            user=record.key if record.key_source == "user" else None)
                for record in tonal]
    return list(zip(tonal, resolve_keys(evidence, kit_named=key_from_name(kit))))


def _bpm_range(category: str, rules: KitRules) -> tuple[float, float]:
    rule = rules.categories.get(category)
    return DEFAULT_BPM_RANGE if rule is None else rule.bpm_range
