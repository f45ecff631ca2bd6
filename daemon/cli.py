"""`traum`: the command line. Parses arguments, calls the engine, prints, sets exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 usage, 3 config or rules error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.errors import ConfigError, RuleError, TraumError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="traum", description="Traum-Engine: turn construction kits and text prompts "
        "into mastered tracks, locally.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage, 3 config or rules error.")
    parser.add_argument("--version", action="version", version=f"traum {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $TRAUM_CONFIG, "
                        "then ./config.toml, then built-in defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    # --config is accepted after the subcommand too ("traum run --config X"); SUPPRESS keeps
    # a value given before the subcommand when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (same as before the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("run", parents=[common], help="run the daemon in the foreground until SIGTERM",
                   description="Watch inbox/ and outbox/requests/, ingest kits and render "
                   "prompts until SIGTERM. SIGHUP reloads config and rules.")
    ingest = sub.add_parser("ingest", parents=[common], help="ingest kits once and exit",
                            description="Ingest the given kits (folders, .zip or audio "
                            "files); with no PATH, everything in inbox/. Originals leave "
                            "the inbox once stored.")
    ingest.add_argument("paths", nargs="*", metavar="PATH", type=Path)
    ingest.add_argument("--json", action="store_true", help="print the reports as JSON")

    plan = sub.add_parser("plan", parents=[common], help="arrange a prompt into a track plan",
                          description="Turn a prompt (text, or a .prompt file) into a plan.")
    plan.add_argument("prompt", metavar="PROMPT")
    plan.add_argument("--seed", type=int, help="fix every random choice")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    render = sub.add_parser("render", parents=[common], help="plan and render a prompt to a WAV",
                            description="Plan PROMPT (text or a .prompt file) and render "
                            "it with the library's stems to a mastered WAV + JSON report.")
    render.add_argument("prompt", metavar="PROMPT")
    render.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="output WAV (default: outbox/requests/<words>.wav)")
    render.add_argument("--seed", type=int, help="fix every random choice")
    render.add_argument("--json", action="store_true", help="print the report as JSON")

    status = sub.add_parser("status", parents=[common], help="library, queue and error summary",
                            description="Stems and kits by category, pending inbox items "
                            "and requests, work in progress, quarantine, last errors.")
    status.add_argument("--json", action="store_true", help="print as JSON")

    stems = sub.add_parser("stems", parents=[common], help="list every stem with its analysis")
    stems.add_argument("--category", help="only this category")
    stems.add_argument("--kit", help="only this kit")
    stems.add_argument("--json", action="store_true", help="print as JSON")

    search = sub.add_parser("search", parents=[common], help="find stems by text or similarity",
                            description="Rank stems by a text query (categories, tags, kit "
                            "and file names, English or German), or by similarity to a "
                            "stem with --like.")
    search.add_argument("query", nargs="?", default="", metavar="QUERY")
    search.add_argument("--category", help="only this category")
    search.add_argument("--like", type=int, metavar="STEM_ID", help="rank by similarity")
    search.add_argument("--limit", type=int, default=20, help="how many results (20)")
    search.add_argument("--json", action="store_true", help="print as JSON")

    sub.add_parser("demo", parents=[common],
                   help="synthesise a demo kit, ingest it and render a track",
                   description="Write a procedurally synthesised construction kit to "
                   "inbox/, ingest it and render outbox/requests/demo.wav from "
                   "'driving industrial techno 138 bpm'.")

    service = sub.add_parser("service", parents=[common], help="print or install the systemd unit",
                             description="Print or install a hardened Type=notify unit.")
    service.add_argument("action", choices=("print", "install"))
    service.add_argument("--user", action="store_true", help="a user unit (~/.config)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from daemon import commands

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return handler(args)
    except (ConfigError, RuleError) as exc:
        print(f"traum: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except TraumError as exc:
        print(f"traum: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("traum: interrupted", file=sys.stderr)
        return EXIT_FAILURE


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
