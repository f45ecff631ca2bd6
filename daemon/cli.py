"""`traum`: the command line. Parses arguments, calls the engine, prints, sets exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 usage, 3 config or rules error.

Every failure is one line on stderr. A `TraumError` says what to do; any other exception
is a bug or an unforeseen fault and is reported as ``traum: <command> failed: <reason>
(run with --debug for details)``. Only ``--debug`` prints tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
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
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error (for a bug report)")
    # --config and --debug are accepted after the subcommand too ("traum run --config X");
    # SUPPRESS keeps a value given before the subcommand when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (same as before the command)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the traceback of an error (same as before the command)")
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
        _report(f"traum: {exc}", debug=args.debug)
        return EXIT_CONFIG
    except TraumError as exc:
        _report(f"traum: {exc}", debug=args.debug)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("traum: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # the last boundary: anything else is one line, not a traceback
        hint = "" if args.debug else " (run with --debug for details)"
        _report(f"traum: {args.command} failed: {describe_exception(exc)}{hint}",
                debug=args.debug)
        return EXIT_FAILURE


def describe_exception(exc: BaseException) -> str:
    """A one-line reason for an unexpected exception: the OS's words and the file for an
    `OSError` ("No space left on device: /lib/stems.db"), else its type and message."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _report(line: str, *, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)
