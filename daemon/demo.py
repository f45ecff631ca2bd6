"""`traum demo`: the newcomer path from nothing to a rendered track, no samples needed."""

from __future__ import annotations

from pathlib import Path

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
        outcome = engine.render(prompt)
    finally:
        engine.close()
    result, plan = outcome.result, outcome.plan
    print(f"rendered {result.wav}\n  {plan.genre}, {plan.bpm:g} BPM, {plan.key}, "
          f"{result.duration:.1f} s, {result.lufs:.1f} LUFS, {result.true_peak_db:.1f} dBTP")
    print("stems chosen:")
    for choice in result.lane_stems():
        print(f"  {choice.lane:<10} {choice.file}  (stem {choice.stem_id})")
    print(f"plan and provenance: {result.report}")
    print(f"spectrogram: {write_spectrogram(result.wav)}")
    return 0


def write_spectrogram(wav: Path) -> Path:
    """Save a spectrogram PNG of a rendered WAV beside it."""
    import soundfile as sf

    from daemon.render.picture import spectrogram_image, write_png

    audio, sample_rate = sf.read(wav, dtype="float32", always_2d=True)
    return write_png(wav.with_suffix(".png"), spectrogram_image(audio.T, sample_rate))
