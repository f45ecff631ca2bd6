"""Synthesised kits analysed stem by stem and then weighed as a kit, without a database:
what the ingest stores once a kit's last stem is in (`kitpass.kit_updates`)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from daemon.ingest.analyse import AnalysisResult, analyse_stem
from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.kitpass import KitRules, kit_updates, load_kit_rules
from daemon.ingest.rules import AnalysisRules
from daemon.store.records import COLUMN_NAMES, StemRecord
from daemon.synth import KitSample

ROOT = Path(__file__).resolve().parents[1]
_FIELDS = {column: name for name, column in COLUMN_NAMES.items()}


def kit_rules(genres: dict[str, tuple[float, float]] | None = None) -> KitRules:
    """The shipped categories, with these genre words' tempo ranges."""
    return load_kit_rules(ROOT / "rules", genres or {})


def analyse_kit(samples: list[KitSample], rules: AnalysisRules,
                classifier: CategoryClassifier, *, kit: str = "Export") -> list[StemRecord]:
    """Every sample analysed on its own, as stem records of kit `kit` (ids from 0)."""
    records = []
    for index, sample in enumerate(samples):
        result = analyse_stem(sample.audio, sample.sample_rate, name=sample.name, rules=rules,
                              classifier=classifier)
        records.append(StemRecord(id=index, kit=kit, path=Path(sample.name),
                                  rel_path=sample.name, content_hash=str(index),
                                  **{item.name: getattr(result, item.name)
                                     for item in fields(AnalysisResult)}))
    return records


def settle(records: list[StemRecord], rules: KitRules) -> list[StemRecord]:
    """The records as the kit pass leaves them."""
    updates = kit_updates(records, kit=records[0].kit, rules=rules)
    return [replace(record, **{_FIELDS.get(column, column): value
                               for column, value in updates.get(record.id, {}).items()})
            for record in records]
