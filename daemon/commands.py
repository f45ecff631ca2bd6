"""One function per `traum` subcommand. Each returns an exit code; errors propagate as
`TraumError`s to `cli.main`, the single place that maps them to messages and codes."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from daemon.cli import EXIT_FAILURE, EXIT_OK, print_json
from daemon.compose.plan import plan_to_dict
from daemon.config import Config, load_config
from daemon.errors import ConfigError, RuleError, TraumError


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.service.daemon import run_daemon

    return run_daemon(Path(args.config) if args.config else None)


def cmd_ingest(args: argparse.Namespace) -> int:
    from daemon.service.watch import scan_inbox
    from daemon.work import Engine

    config = load_config(args.config)
    engine = Engine(config)
    engine.reconcile()
    targets = args.paths or scan_inbox(config.paths.inbox)
    reports, failed = [], 0
    try:
        for path in targets:
            try:
                report = engine.ingest(path.resolve(), on_progress=_progress_bar(path.name))
                reports.append(report.as_dict())
            except (ConfigError, RuleError):
                raise  # not about this kit: every kit would fail the same way
            except TraumError as exc:
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


def cmd_plan(args: argparse.Namespace) -> int:
    from daemon.work import Engine

    engine = Engine(load_config(args.config))
    plan = engine.plan_text(_prompt_text(args.prompt), seed=args.seed)
    if args.json:
        print_json(plan_to_dict(plan))
        return EXIT_OK
    print(f"{plan.genre} at {plan.bpm:g} BPM in {plan.key}, {plan.bars} bars, "
          f"{plan.length_seconds:.0f} s, seed {plan.seed}; moods: {', '.join(plan.moods) or '-'}")
    for start, section in zip(plan.section_starts(), plan.structure):
        lanes = ", ".join(q.category + (f"[{'/'.join(q.tags)}]" if q.tags else "")
                          for q in section.stem_queries)
        print(f"  bar {start + 1:>4}  {section.section:<12} {section.bars:>3} bars  "
              f"energy {section.energy:.2f}  {lanes}")
    for note in plan.notes:
        print(f"  note: {note}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from daemon.work import Engine

    config = load_config(args.config)
    engine = Engine(config)
    text = _prompt_text(args.prompt)
    out = args.output or config.paths.requests / f"{_slug(text)}.wav"
    outcome = engine.render_text(text, out_wav=out.resolve(), seed=args.seed)
    if args.json:
        print_json(_render_summary(outcome))
    else:
        _print_render(outcome)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from daemon.work import Engine

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
            print(f"daemon {lane}: running {work['running'] or '-'}, {work['queued']} queued, "
                  f"{work['settling']} settling")
    for error in status["last_errors"]:
        print(f"  error: {error['kit']}/{error['file']}: {error['reason']}")
    return EXIT_OK


def cmd_stems(args: argparse.Namespace) -> int:
    from daemon.store import queries
    from daemon.work import Engine

    config = load_config(args.config)
    Engine(config)
    records = queries.list_stems(config.paths.library, category=args.category, kit=args.kit)
    rows = [dict(_stem_row(r), **(queries.stem_details(r.id) or {})) for r in records]
    if args.json:
        print_json(rows)
        return EXIT_OK
    for row in rows:
        bpm = f"{row['bpm']:.1f}" if row["bpm"] else "-"
        lufs = f"{row['lufs']:.1f}" if row["lufs"] is not None else "-"
        print(f"{row['id']:>5}  {row['category']:<9} {row['kind']:<7} {bpm:>6}  "
              f"{row['key'] or '-':<9} {lufs:>6}  "
              f"{row['kit']}/{row['path']}  [{', '.join(row['tags'])}]")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from daemon.search import search_library

    config = load_config(args.config)
    results = search_library(config, args.query, category=args.category, like=args.like,
                             limit=args.limit)
    if args.json:
        print_json([dict(_stem_row(r), score=round(s, 4)) for r, s in results])
        return EXIT_OK
    for record, score in results:
        print(f"{score:6.3f}  {record.id:>5}  {record.category:<9} {record.kit}/{record.rel_path}"
              f"  [{', '.join(record.tags)}]")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from daemon.demo import run_demo

    return run_demo(load_config(args.config))


def cmd_service(args: argparse.Namespace) -> int:
    from daemon.config import ensure_folders
    from daemon.service.unit import install_unit, render_unit

    config = load_config(args.config)
    text = render_unit(user=args.user, exe=_traum_executable(),
                       config_path=_config_path(config), paths=config.paths,
                       stop_timeout=config.daemon.stop_timeout)
    if args.action == "print":
        print(text, end="")
        return EXIT_OK
    ensure_folders(config.paths)  # systemd refuses ReadWritePaths= that do not exist
    path = install_unit(user=args.user, text=text)
    scope = "--user " if args.user else ""
    print(f"installed {path}\nenable it with: systemctl {scope}enable --now {path.name}")
    return EXIT_OK


def _config_path(config: Config) -> Path:
    if config.source is None:
        raise TraumError("no config.toml found: the service needs one; pass --config PATH")
    return config.source


def _traum_executable() -> str:
    candidate = Path(sys.executable).with_name("traum")
    return str(candidate) if candidate.exists() else f"{sys.executable} -m daemon"


def _prompt_text(prompt: str) -> str:
    from daemon.work import read_prompt

    path = Path(prompt)
    if prompt.endswith(".prompt") and path.is_file():
        return read_prompt(path)
    return prompt


def _slug(text: str) -> str:
    words = re.findall(r"[\w]+", text.casefold())[:6]
    return "-".join(words) or "track"


def _stem_row(record) -> dict:
    return {"id": record.id, "kit": record.kit, "path": record.rel_path,
            "stored_path": str(record.path), "kind": record.kind,
            "category": record.category, "bpm": record.bpm, "key": record.key,
            "tags": list(record.tags), "duration": round(record.duration, 4),
            "lufs": record.lufs, "peak_db": record.peak_db,
            "sample_rate": record.sample_rate, "channels": record.channels,
            "bpm_confidence": record.bpm_confidence, "key_confidence": record.key_confidence,
            "category_confidence": record.category_confidence,
            "embedding_model": record.embedding_model}


def _render_summary(outcome) -> dict:
    result = outcome.result
    return {"wav": str(result.wav), "report": str(result.report), "lufs": result.lufs,
            "true_peak_db": result.true_peak_db, "duration": result.duration,
            "fallbacks": list(result.fallbacks),
            "stems": [choice.__dict__ for choice in result.choices]}


def _print_render(outcome) -> None:
    result, plan = outcome.result, outcome.plan
    print(f"wrote {result.wav} ({result.duration:.1f} s, {result.lufs:.1f} LUFS, "
          f"{result.true_peak_db:.1f} dBTP): {plan.genre} {plan.bpm:g} BPM {plan.key}")
    for choice in result.lane_stems():
        print(f"  {choice.lane:<10} {choice.kit}/{choice.file}")
    for fallback in result.fallbacks:
        print(f"  fallback: {fallback}")


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


def _progress_bar(label: str):
    """A tqdm bar on a TTY, silence otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="stem", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update
