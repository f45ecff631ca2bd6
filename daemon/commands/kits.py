"""`traum kits`: every kit's profile (genre family, tempo, keys as heard, sound)."""

from __future__ import annotations

import argparse
from typing import Any

from daemon.commands.common import EXIT_OK, print_json
from daemon.config import load_config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``kits``."""
    kits = sub.add_parser("kits", parents=[common], help="list the kits with their profiles",
                          description="Every complete kit's profile: its genre family (from "
                          "its names, or inferred from its tempo and sound, with a "
                          "confidence), style words, loop tempo, keys as the renderer hears "
                          "them, and stems per category. Stale profiles are computed again.")
    kits.add_argument("--json", action="store_true", help="print as JSON")
    kits.set_defaults(handler=cmd_kits)


def cmd_kits(args: argparse.Namespace) -> int:
    from daemon.work import Engine

    summaries = Engine(load_config(args.config)).kit_summaries()
    if args.json:
        print_json(summaries)
        return EXIT_OK
    if not summaries:
        print("no kits yet: drop a construction kit into the inbox")
    for summary in summaries:
        print(kit_line(summary))
    return EXIT_OK


def kit_line(summary: dict[str, Any]) -> str:
    """One kit in a line: name, family (and where it came from), tempo, keys, stems."""
    family = summary["family"] or "unknown family"
    if summary["family_source"] not in ("name", "folder"):
        family += f" (inferred from {summary['family_source']}, " \
                  f"confidence {summary['family_confidence']:.2f})"
    tempo = f"{summary['tempo']:g} BPM" if summary["tempo"] else "no loops"
    keys = ", ".join(f"{item['key']} x{item['stems']}" for item in summary["keys"][:3]) or "-"
    corrected = (f"; {summary['keys_corrected']} key labels corrected by ear"
                 if summary["keys_corrected"] else "")
    styles = f" [{', '.join(summary['styles'])}]" if summary["styles"] else ""
    return (f"{summary['kit']}: {family}{styles}, {tempo}, keys {keys}{corrected}, "
            f"{summary['stems']} stems")
