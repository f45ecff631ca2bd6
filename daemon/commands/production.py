"""`traum plan`, `traum render` and `traum demo`: from a prompt to a track."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.commands.common import EXIT_OK, print_json, prompt_text, slug
from daemon.compose.plan import plan_to_dict
from daemon.config import EXPORTS, load_config, parse_exports


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``plan``, ``render`` and ``demo``."""
    plan = sub.add_parser("plan", parents=[common], help="arrange a prompt into a track plan",
                          description="Turn a prompt (text, or a .prompt file) into a plan.")
    plan.add_argument("prompt", metavar="PROMPT")
    plan.add_argument("--seed", type=int, help="fix every random choice")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--explain", action="store_true",
                      help="also choose the stems as a render would and show, per lane, the "
                      "stem, its score breakdown (genre, kit, tempo, key, chroma, role, "
                      "similarity...) and the runner-up, with the backbone kit and every "
                      "label overridden by ear")
    plan.set_defaults(handler=cmd_plan)

    render = sub.add_parser("render", parents=[common], help="plan and render a prompt to a WAV",
                            description="Plan PROMPT (text or a .prompt file) and render "
                            "it with the library's stems to a mastered WAV + JSON report.")
    render.add_argument("prompt", metavar="PROMPT")
    render.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="output WAV (default: outbox/requests/<words>.wav)")
    render.add_argument("--seed", type=int, help="fix every random choice")
    render.add_argument("--export", metavar="NAMES",
                        help="outputs besides the WAV and JSON, comma-separated, from "
                        f"{', '.join(EXPORTS)} (default: the prompt's 'export:' line, else "
                        "render.exports); each is named after FILE: FILE.png, FILE.lanes/, "
                        "FILE.mid, FILE.dawproject")
    render.add_argument("--json", action="store_true", help="print the report as JSON")
    render.set_defaults(handler=cmd_render)

    demo = sub.add_parser("demo", parents=[common],
                          help="synthesise a demo kit, ingest it and render a track",
                          description="Write a procedurally synthesised construction kit to "
                          "inbox/, ingest it and render outbox/requests/demo.wav from "
                          "'driving industrial techno 138 bpm'.")
    demo.set_defaults(handler=cmd_demo)
def cmd_plan(args: argparse.Namespace) -> int:
    from daemon.render.explain import explain_lines
    from daemon.work import Engine

    engine = Engine(load_config(args.config))
    text = prompt_text(args.prompt)
    if args.explain:
        plan, selection = engine.explain_text(text, seed=args.seed)
    else:
        plan, selection = engine.plan_text(text, seed=args.seed), None
    if args.json:
        print_json(plan_to_dict(plan) if selection is None else
                   {"plan": plan_to_dict(plan), "selection": selection})
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
    for line in explain_lines(selection) if selection else ():
        print(line)
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from daemon.work import Engine

    config = load_config(args.config)
    exports = None if args.export is None else parse_exports(args.export, where="--export")
    engine = Engine(config)
    text = prompt_text(args.prompt)
    out = args.output or config.paths.requests / f"{slug(text)}.wav"
    outcome = engine.render_text(text, out_wav=out.resolve(), seed=args.seed, exports=exports)
    if args.json:
        print_json(_render_summary(outcome))
    else:
        _print_render(outcome)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from daemon.demo import run_demo

    return run_demo(load_config(args.config))


def _render_summary(outcome) -> dict:
    result = outcome.result
    return {"wav": str(result.wav), "report": str(result.report), "lufs": result.lufs,
            "true_peak_db": result.true_peak_db, "duration": result.duration,
            "exports": {name: str(path) for name, path in result.exports.items()},
            "fallbacks": list(result.fallbacks),
            "stems": [choice.__dict__ for choice in result.choices]}


def _print_render(outcome) -> None:
    result, plan = outcome.result, outcome.plan
    print(f"wrote {result.wav} ({result.duration:.1f} s, {result.lufs:.1f} LUFS, "
          f"{result.true_peak_db:.1f} dBTP): {plan.genre} {plan.bpm:g} BPM {plan.key}")
    for choice in result.lane_stems():
        print(f"  {choice.lane:<10} {choice.kit}/{choice.file}")
    for name, path in result.exports.items():
        print(f"  {name + ':':<10} {path}")
    for fallback in result.fallbacks:
        print(f"  fallback: {fallback}")

