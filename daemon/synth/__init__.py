"""Procedural construction-kit synthesiser: the demo kit and the test fixtures.

`synthesize_kit` renders a complete techno kit (drums, bass, pad, arp, atmo, FX) at a
tempo and key with known ground truth; `write_kit_folder` / `write_kit_zip` put it on
disk atomically; `write_demo_kit` drops a ready-made zip into an inbox.
"""

from daemon.synth.demo import write_demo_kit
from daemon.synth.kit import (
    KitSample,
    bpm_token,
    ground_truth,
    key_token,
    synthesize_kit,
    write_kit_folder,
    write_kit_zip,
)

__all__ = [
    "KitSample",
    "bpm_token",
    "ground_truth",
    "key_token",
    "synthesize_kit",
    "write_demo_kit",
    "write_kit_folder",
    "write_kit_zip",
]
