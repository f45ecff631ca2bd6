"""`traum fix` and `traum reanalyse`: the user's corrections, and analysing stored stems again.

A correction is stored with the source ``"user"``: no re-analysis or kit consensus writes it
again. A corrected category teaches the audio classifier (it learns from the user's named and
corrected stems); a corrected tempo or key is weighed with the kit's other stems, so fixing
one loop of a kit can settle the rest.
"""

from __future__ import annotations

import argparse
import sys

from daemon.commands.common import EXIT_FAILURE, EXIT_OK, print_json, progress_bar
from daemon.commands.library import stem_row
from daemon.compose.plan import MAX_BPM, MIN_BPM
from daemon.config import load_config
from daemon.errors import TraumError
from daemon.ingest.key import key_from_name
from daemon.store.records import StemRecord
from daemon.taxonomy import CATEGORIES


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``fix`` and ``reanalyse``."""
    fix = sub.add_parser(
        "fix", parents=[common], help="correct a stem's category, tempo or key",
        description="Store your own category, tempo or key for a stem, or with --kit for "
        "every stem of a kit (the tempo for its loops, the key for its tonal stems). "
        "Re-analysis never overwrites a correction; a category teaches the audio "
        "classifier; a tempo or key is weighed with the kit's other stems. `traum stems` "
        "marks corrected values with *.")
    fix.add_argument("stem", nargs="?", type=int, metavar="STEM_ID", help="the stem's id")
    fix.add_argument("--kit", help="correct every stem of this kit instead")
    fix.add_argument("--category", choices=CATEGORIES, help="the stem's category")
    fix.add_argument("--bpm", type=float, help="the loop's tempo")
    fix.add_argument("--key", help="the key: 'A minor', 'Am', 'F#m', 'C major', 'c-moll'")
    fix.add_argument("--json", action="store_true", help="print the corrected stems as JSON")
    fix.set_defaults(handler=cmd_fix)

    again = sub.add_parser(
        "reanalyse", parents=[common], help="analyse stored stems again",
        description="Analyse stored stems again with the current code and rules, keeping "
        "their ids, embeddings and your corrections. Without options: the stems an upgrade "
        "or an interrupted run left (the daemon does this by itself at start). A killed run "
        "resumes where it stopped; while one is unfinished, --kit and --all finish it first.")
    which = again.add_mutually_exclusive_group()
    which.add_argument("--kit", help="every stem of this kit")
    which.add_argument("--all", action="store_true", help="every stem of the library")
    again.add_argument("--json", action="store_true", help="print the report as JSON")
    again.set_defaults(handler=cmd_reanalyse)


def cmd_fix(args: argparse.Namespace) -> int:
    from daemon.ingest.kitpass import settle_kit
    from daemon.store import queries, revisions
    from daemon.work import Engine

    changes = requested_changes(args)
    if (args.stem is None) == (args.kit is None):
        raise TraumError("fix: name one stem (STEM_ID) or one kit (--kit KIT)")
    config = load_config(args.config)
    engine = Engine(config)
    library = config.paths.library
    targets = ([revisions.get_stem(library, args.stem)] if args.kit is None
               else queries.list_stems(library, kit=args.kit))
    if not targets or targets[0] is None:
        what = f"stem {args.stem}" if args.kit is None else f"kit {args.kit!r}"
        raise TraumError(f"fix: no {what} in the library; `traum stems` lists them")
    rules = engine.kit_rules()
    tonal = rules.categories.tonal()
    plan = [(stem, field, value) for stem in targets
            for field, value in applicable(stem, changes, tonal=tonal, single=args.kit is None)]
    with revisions.transaction():
        for stem, field, value in plan:
            revisions.set_correction(stem.id, field, value)
    for kit in sorted({stem.kit for stem, _, _ in plan}):
        settle_kit(kit, library=library, rules=rules)
    if "category" in changes:
        engine.learn_categories()
    corrected = sorted({stem.id for stem, _, _ in plan})
    fixed = [revisions.get_stem(library, stem_id) for stem_id in corrected]
    if args.json:
        print_json([stem_row(stem) for stem in fixed])
    else:
        for stem in fixed:
            print(f"stem {stem.id} {stem.kit}/{stem.rel_path}: " + ", ".join(
                f"{field} {_shown(stem, field)}" for field in stem.overrides))
        if "category" in changes:
            print("kind, tempo and key follow a new category at the next `traum reanalyse`")
    return EXIT_OK


def requested_changes(args: argparse.Namespace) -> dict[str, object]:
    """The corrections asked for, validated: field → canonical value."""
    changes: dict[str, object] = {}
    if args.category is not None:
        changes["category"] = args.category
    if args.bpm is not None:
        if not MIN_BPM <= args.bpm <= MAX_BPM:
            raise TraumError(f"fix: --bpm must be between {MIN_BPM:g} and {MAX_BPM:g} "
                             f"(got {args.bpm:g})")
        changes["bpm"] = round(args.bpm, 3)
    if args.key is not None:
        key = key_from_name(args.key.strip())
        if key is None:
            raise TraumError(f"fix: --key {args.key!r} is no key; write e.g. 'A minor', 'Am', "
                             "'F#m' or 'C major'")
        changes["key"] = key
    if not changes:
        raise TraumError("fix: say what to correct: --category, --bpm and/or --key")
    return changes


def applicable(stem: StemRecord, changes: dict[str, object], *, tonal: frozenset[str],
               single: bool) -> list[tuple[str, object]]:
    """The corrections that apply to `stem`: a tempo to loops, a key to tonal categories
    (after a category correction). For a single stem the others are refused; across a
    kit they are skipped."""
    category = changes.get("category", stem.category)
    refusals = {"bpm": (stem.kind != "loop", f"stem {stem.id} is a one-shot: only loops "
                        "have a tempo"),
                "key": (category not in tonal, f"stem {stem.id} is {category}, which carries "
                        "no key (correct --category too if that is wrong)")}
    chosen = []
    for field, value in changes.items():
        refused, why = refusals.get(field, (False, ""))
        if refused and single:
            raise TraumError(f"fix: {why}")
        if not refused:
            chosen.append((field, value))
    return chosen


def cmd_reanalyse(args: argparse.Namespace) -> int:
    from daemon.store import queries
    from daemon.work import Engine

    config = load_config(args.config)
    engine = Engine(config)
    if args.kit is not None and not queries.list_stems(config.paths.library, kit=args.kit):
        raise TraumError(f"reanalyse: no kit {args.kit!r} in the library; `traum stems` "
                         "lists them")
    try:
        report = engine.reanalyse(kit=args.kit, everything=args.all,
                                  on_progress=progress_bar("re-analysing"))
    finally:
        engine.close()
    if args.json:
        print_json(report.as_dict())
    else:
        resumed = " (finished an interrupted run first: run again for the rest)" if (
            report.resumed) else ""
        print(f"re-analysed {report.updated} stems, {report.kits_settled} kits settled, "
              f"{len(report.failed)} failed, {report.remaining} left{resumed}")
        for failure in report.failed:
            print(f"  kept its old analysis: {failure}", file=sys.stderr)
    return EXIT_FAILURE if report.failed else EXIT_OK


def _shown(stem: StemRecord, field: str) -> str:
    return {"category": stem.category, "bpm": f"{stem.bpm:g}", "key": str(stem.key)}[field]
