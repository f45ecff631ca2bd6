"""`traum ingest`, `status`, `stems` and `search`: filling and reading the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.commands.common import EXIT_FAILURE, EXIT_OK, print_json, progress_bar
from daemon.commands.kits import kit_line
from daemon.config import load_config
from daemon.errors import ConfigError, RuleError, StorageFault, TraumError
from daemon.store.records import CORRECTABLE, StemRecord


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``ingest``, ``status``, ``stems`` and ``search``."""
    ingest = sub.add_parser("ingest", parents=[common], help="ingest kits once and exit",
                            description="Ingest the given kits (folders, .zip or audio "
                            "files); with no PATH, everything in inbox/. Originals leave "
                            "the inbox once stored.")
    ingest.add_argument("paths", nargs="*", metavar="PATH", type=Path)
    ingest.add_argument("--json", action="store_true", help="print the reports as JSON")
    ingest.set_defaults(handler=cmd_ingest)

    status = sub.add_parser("status", parents=[common], help="library, queue and error summary",
                            description="Stems and kits by category, pending inbox items "
                            "and requests, work in progress, quarantine, last errors.")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=cmd_status)

    stems = sub.add_parser("stems", parents=[common], help="list every stem with its analysis",
                           description="One line per stem: id, category, kind, BPM, key, "
                           "LUFS, kit/path, tags. A trailing * marks a value you corrected "
                           "(traum fix), a ? a key to check by ear before trusting it.")
    stems.add_argument("--category", help="only this category")
    stems.add_argument("--kit", help="only this kit")
    stems.add_argument("--limit", type=_page_size, metavar="N",
                       help="at most N stems (a page; the next starts at --after the last id)")
    stems.add_argument("--after", type=int, default=0, metavar="ID",
                       help="only stems with an id above ID (the next page)")
    stems.add_argument("--json", action="store_true", help="print as JSON")
    stems.set_defaults(handler=cmd_stems)

    search = sub.add_parser("search", parents=[common], help="find stems by text or similarity",
                            description="Rank stems by a text query (categories, tags, kit "
                            "and file names, English or German), or by similarity to a "
                            "stem with --like.")
    search.add_argument("query", nargs="?", default="", metavar="QUERY")
    search.add_argument("--category", help="only this category")
    search.add_argument("--like", type=int, metavar="STEM_ID", help="rank by similarity")
    search.add_argument("--limit", type=int, default=20, help="how many results (20)")
    search.add_argument("--json", action="store_true", help="print as JSON")
    search.set_defaults(handler=cmd_search)


def cmd_ingest(args: argparse.Namespace) -> int:
    from daemon.folders import scan_inbox
    from daemon.work import Engine

    config = load_config(args.config)
    engine = Engine(config)
    engine.reconcile()
    targets = args.paths or scan_inbox(config.paths.inbox)
    reports, failed = [], 0
    try:
        for path in targets:
            try:
                report = engine.ingest(path.resolve(), on_progress=progress_bar(path.name))
                reports.append(report.as_dict())
            except (ConfigError, RuleError):
                raise  # not about this kit: every kit would fail the same way
            except TraumError as exc:
                if isinstance(exc, StorageFault) and exc.scope == "lane":
                    raise  # a full, read-only or locked library: every kit would fail alike
                failed += 1
                reports.append({"kit": path.name, "error": str(exc)})
                print(f"traum: {exc}", file=sys.stderr)
    finally:
        engine.close()
    if args.json:
        print_json(reports)
    else:
        _print_ingest_summary(reports)
    return EXIT_FAILURE if failed else EXIT_OK



def cmd_status(args: argparse.Namespace) -> int:
    from daemon.work import STATUS_KITS, Engine

    status = Engine(load_config(args.config)).status()
    if args.json:
        print_json(status)
        return EXIT_OK
    print(f"{status['stems']} stems in {status['kits']} kits; {status['renders']} renders; "
          f"{status['quarantined']} quarantined")
    for category, count in status["by_category"].items():
        print(f"  {category:<10} {count}")
    print(f"pending: {len(status['pending']['inbox'])} inbox, "
          f"{len(status['pending']['requests'])} requests")
    for lane in ("ingest", "render"):
        work = status["in_progress"].get(lane)
        if isinstance(work, dict):
            state = (f"paused: {work['paused']}" if work.get("paused")
                     else f"running {work['running'] or '-'}")
            print(f"daemon {lane} {state}, {work['queued']} queued, "
                  f"{work['settling']} settling")
            for name, reason in (work.get("held") or {}).items():
                print(f"  held {name}: {reason}")
    _print_cluster(status.get("cluster"))
    if status["expired"]:
        print(f"{len(status['expired'])} quarantine and error files are older than "
              "daemon.keep_days: traum gc removes them")
    for error in status["last_errors"]:
        print(f"  error: {error['kit']}/{error['file']}: {error['reason']}")
    if status["kit_profiles"]:
        print("kits:")
    elif status["kits"] > STATUS_KITS:
        print(f"kits: {status['kits']} (traum kits lists their profiles)")
    for summary in status["kit_profiles"]:
        print(f"  {kit_line(summary)}")
    return EXIT_OK


def _print_cluster(cluster: dict | None) -> None:
    """The workers and the queues of a ``[cluster]`` (nothing on one machine)."""
    if cluster is None:
        return
    for lane in ("ingest", "render"):
        depth = cluster["queues"].get(lane, {})
        print(f"queue {lane}: {depth.get('todo', 0)} waiting, {depth.get('doing', 0)} running")
    print(f"workers: {len(cluster['workers'])}")
    for worker in cluster["workers"]:
        state = "alive" if worker["alive"] else "stale"
        print(f"  {worker['name']} on {worker['host']}: {','.join(worker['lanes'])}, "
              f"heartbeat {worker['heartbeat_age']:.0f} s ago ({state})")


def _page_size(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0 (got {text!r})")
    return int(text)


def cmd_stems(args: argparse.Namespace) -> int:
    from daemon.store import queries
    from daemon.work import Engine

    config = load_config(args.config)
    Engine(config)
    records = queries.list_stems(config.paths.library, category=args.category, kit=args.kit,
                                 after=args.after, limit=args.limit)
    rows = [stem_row(record) for record in records]
    if args.json:
        print_json(rows)
        return EXIT_OK
    for row in rows:
        # "*": the user's correction; "?": a key to check by ear before trusting it.
        mark = {name: "*" if name in row["overrides"] else "" for name in CORRECTABLE}
        bpm = f"{row['bpm']:.1f}{mark['bpm']}" if row["bpm"] else "-"
        key = (f"{row['key']}{mark['key'] or ('' if row['key_trusted'] else '?')}"
               if row["key"] else "-")
        lufs = f"{row['lufs']:.1f}" if row["lufs"] is not None else "-"
        print(f"{row['id']:>5}  {row['category'] + mark['category']:<10} {row['kind']:<7} "
              f"{bpm:>7}  {key:<10} {lufs:>6}  "
              f"{row['kit']}/{row['path']}  [{', '.join(row['tags'])}]")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from daemon.search import search_library

    config = load_config(args.config)
    results = search_library(config, args.query, category=args.category, like=args.like,
                             limit=args.limit)
    if args.json:
        print_json([dict(stem_row(r), score=round(s, 4)) for r, s in results])
        return EXIT_OK
    for record, score in results:
        print(f"{score:6.3f}  {record.id:>5}  {record.category:<9} {record.kit}/{record.rel_path}"
              f"  [{', '.join(record.tags)}]")
    return EXIT_OK



def stem_row(record: StemRecord) -> dict:
    """One stem as `traum stems --json` and `traum search --json` print it."""
    return {
        "id": record.id,
        "kit": record.kit,
        "path": record.rel_path,
        "stored_path": str(record.path),
        "kind": record.kind,
        "kind_source": record.kind_source,
        "category": record.category,
        "category_confidence": record.category_confidence,
        "category_source": record.category_source,
        "bpm": record.bpm,
        "bpm_confidence": record.bpm_confidence,
        "bpm_source": record.bpm_source,
        "bpm_reason": record.bpm_reason,
        "pulse_bpm": record.pulse_bpm,
        "pulse_confidence": record.pulse_confidence,
        "pulse_kicks": record.pulse_kicks,
        "key": record.key,
        "key_confidence": record.key_confidence,
        "key_source": record.key_source,
        "key_trusted": record.key_trusted,
        "key_reason": record.key_reason,
        "overrides": list(record.overrides),
        "tags": list(record.tags),
        "duration": round(record.duration, 4),
        "sample_rate": record.sample_rate,
        "channels": record.channels,
        "lufs": record.lufs,
        "peak_db": record.peak_db,
        "rms_db": record.rms_db,
        "crest_db": record.crest_db,
        "descriptors": dict(record.descriptors),
        "embedding_model": record.embedding_model,
        "analysis_version": record.analysis_version,
    }




def _print_ingest_summary(reports: list[dict]) -> None:
    if not reports:
        print("nothing to ingest")
    for report in reports:
        if "error" in report:
            print(f"{report['kit']}: rejected: {report['error']}")
            continue
        print(f"{report['kit']}: {report['stored']} stored, {report['duplicates']} duplicates, "
              f"{report['junk']} junk skipped, {report['skipped']} other skipped, "
              f"{report['quarantined']} quarantined")
        for error in report["errors"]:
            print(f"  quarantined: {error}")
