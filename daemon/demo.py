"""`traum demo`: the newcomer path from nothing to a rendered track, no samples needed."""

from __future__ import annotations

from daemon.config import Config
from daemon.errors import TraumError
from daemon.fsutil import write_text_atomic
from daemon.work import Engine

DEMO_PROMPT = "driving industrial techno 138 bpm"


def run_demo(config: Config) -> int:
    """Synthesise a kit into the inbox, ingest it, render the demo prompt; print the result."""
    from daemon.synth.demo import write_demo_kit

    engine = Engine(config)
    try:
        kit = write_demo_kit(config.paths.inbox, bpm=138.0, key="A minor", seed=0)
        print(f"synthesised demo kit {kit}")
        report = engine.ingest(kit)
        print(f"ingested {report.kit}: {report.stored} stored, {report.duplicates} already in "
              f"the library, {report.quarantined} quarantined")
        if report.quarantined:
            raise TraumError(f"demo: {report.quarantined} demo stems were quarantined: "
                             + "; ".join(report.errors))
        prompt = config.paths.requests / "demo.prompt"
        write_text_atomic(prompt, DEMO_PROMPT + "\n")
        # The arrangement picture is part of the demo whatever render.exports says.
        exports = dict.fromkeys((*config.render.exports, "png"))
        outcome = engine.render_text(DEMO_PROMPT, out_wav=prompt.with_suffix(".wav"),
                                     exports=tuple(exports))
    finally:
        engine.close()
    result, plan = outcome.result, outcome.plan
    print(f"rendered {result.wav}\n  {plan.genre}, {plan.bpm:g} BPM, {plan.key}, "
          f"{result.duration:.1f} s, {result.lufs:.1f} LUFS, {result.true_peak_db:.1f} dBTP")
    print("stems chosen:")
    for choice in result.lane_stems():
        print(f"  {choice.lane:<10} {choice.file}  (stem {choice.stem_id})")
    print(f"plan and provenance: {result.report}")
    for name, path in result.exports.items():
        print(f"{'arrangement picture' if name == 'png' else name}: {path}")
    return 0
