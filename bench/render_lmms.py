"""The renderer's objective checks on real recorded samples (Debian's lmms-common).

Ingests /usr/share/lmms/samples into a temporary library with the real engine, renders one
prompt per genre and measures each WAV: re-estimated tempo (searched within ±40% of the
plan's tempo, so a half/double-time octave is not mistaken for an error), integrated
loudness, true peak (4x oversampled), duration error and the rank correlation of section
RMS with the plan's energy. Run: python bench/render_lmms.py [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
from scipy.signal import resample_poly
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.config import load_config  # noqa: E402
from daemon.ingest.tempo import estimate_tempo  # noqa: E402
from daemon.work import Engine  # noqa: E402

LMMS = Path("/usr/share/lmms/samples")
PROMPTS = ("driving industrial techno 130 bpm", "deep house 122 bpm", "breakbeat 135 bpm",
           "minimal techno 126 bpm", "dubstep 140 bpm", "hip hop 90 bpm",
           "aggressiver düsterer Techno 135 bpm")


def measure(outcome) -> dict:
    plan, result = outcome.plan, outcome.result
    audio, rate = sf.read(result.wav, dtype="float32", always_2d=True)
    audio = audio.T
    bpm, _ = estimate_tempo(y=audio.mean(axis=0), sample_rate=rate,
                            min_bpm=plan.bpm / 1.4, max_bpm=plan.bpm * 1.4)
    per_bar = rate * 240 / plan.bpm
    rms = [np.sqrt(np.mean(audio[:, round(s * per_bar):round((s + x.bars) * per_bar)] ** 2))
           for s, x in zip(plan.section_starts(), plan.structure)]
    tail = json.loads(result.report.read_text()).get("tail_seconds", 0.0)
    return {
        "prompt": plan.prompt, "genre": plan.genre, "plan_bpm": plan.bpm,
        "tempo_error_pct": round(100 * abs(bpm / plan.bpm - 1), 3),
        "lufs": round(pyloudnorm.Meter(rate).integrated_loudness(audio.T.astype(float)), 2),
        "true_peak_db": round(20 * np.log10(np.abs(resample_poly(audio, 4, 1, axis=1)).max()),
                              2),
        "duration_error_ms": round(1000 * abs(audio.shape[1] / rate
                                              - plan.bars * 240 / plan.bpm - tail), 2),
        "energy_rho": round(float(spearmanr(rms, [s.energy for s in plan.structure])
                                  .statistic), 3),
        "fallbacks": len(result.fallbacks),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not LMMS.is_dir():
        print(f"{LMMS} not found: apt-get install lmms-common", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
        engine = Engine(load_config(root / "config.toml"))
        shutil.copytree(LMMS, root / "inbox" / "lmms")
        report = engine.ingest(root / "inbox" / "lmms")
        rows = [measure(engine.render_text(prompt, out_wav=root / f"{i}.wav"))
                for i, prompt in enumerate(PROMPTS)]
        engine.close()
    if args.json:
        print(json.dumps({"stored": report.stored, "renders": rows}, indent=2))
        return 0
    print(f"lmms-common: {report.stored} stems stored, {report.quarantined} quarantined")
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[key]) for key in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
