"""`traum`: the command line. Parses arguments, calls the engine, prints, sets exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 usage, 3 config or rules error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from daemon import __version__
from daemon.commands import MODULES
from daemon.commands.common import EXIT_CONFIG, EXIT_FAILURE
from daemon.errors import ConfigError, RuleError, TraumError


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

    for module in MODULES:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (ConfigError, RuleError) as exc:
        print(f"traum: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except TraumError as exc:
        print(f"traum: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("traum: interrupted", file=sys.stderr)
        return EXIT_FAILURE

