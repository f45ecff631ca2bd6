"""The outputs of a render: one writer per format, chosen by name, written beside the WAV.

Every writer takes a `RenderedTrack` and the path of the one output it writes (a file, or for
the lanes a folder of files), and writes it atomically (`daemon.fsutil`). `OUTPUTS` maps the
export names of ``render.exports`` to writers; the WAV and the JSON report are always written.
A new format is one module in this package and one entry here (and its name in
`daemon.config.EXPORTS`, which validates the configuration without importing the renderer).

`write_outputs` writes the WAV and the chosen exports side by side (`WRITER_THREADS`: they
only read the track, and most of their time is spent in numpy, zlib and file writes, which
run outside the GIL), then the report last: the report's presence says the set is complete.
When any output fails, the outputs this call wrote are removed again, so a failed render
leaves none of its files behind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from daemon.config import EXPORTS
from daemon.errors import RenderError
from daemon.fsutil import remove_entry
from daemon.render.outputs.arrangement_png import write_arrangement_png
from daemon.render.outputs.dawproject import write_dawproject
from daemon.render.outputs.lanes import write_lanes
from daemon.render.outputs.master_wav import write_master_wav
from daemon.render.outputs.pattern_midi import write_pattern_midi
from daemon.render.outputs.report import write_report
from daemon.render.track import Choice, RenderedTrack


@dataclass(frozen=True)
class Output:
    """How one output is named and written."""

    suffix: str  # replaces the WAV's suffix: track.wav → track.png
    write: Callable[[RenderedTrack, Path], None]
    what: str  # for the report's notes


OUTPUTS: dict[str, Output] = {
    "wav": Output(".wav", write_master_wav, "the mastered track with section cues"),
    "json": Output(".json", write_report, "plan, stems, measurements and notes"),
    "png": Output(".png", write_arrangement_png, "arrangement picture"),
    "lanes": Output(".lanes", write_lanes, "one 24-bit WAV per lane, before the limiter"),
    "midi": Output(".mid", write_pattern_midi, "the one-shot patterns as General MIDI drums"),
    "dawproject": Output(".dawproject", write_dawproject,
                         "DAWproject 1.0 with tracks, clips, markers and audio"),
}
ALWAYS = ("wav", "json")
WRITER_THREADS = 2  # the machines this runs on have two cores


@dataclass(frozen=True)
class RenderResult:
    """What a render wrote and measured."""

    wav: Path
    report: Path
    exports: dict[str, Path]  # export name → what it wrote, beside the WAV and the report
    lufs: float
    true_peak_db: float
    duration: float
    choices: tuple[Choice, ...]
    fallbacks: tuple[str, ...]

    def lane_stems(self) -> list[Choice]:
        """The first choice of each (lane, stem) pair, in order: who plays what, once."""
        firsts: dict[tuple[str, int], Choice] = {}
        for choice in self.choices:
            firsts.setdefault((choice.lane, choice.stem_id), choice)
        return list(firsts.values())


def output_path(out_wav: Path, name: str) -> Path:
    """Where export `name` of a render to `out_wav` goes (``track.wav`` → ``track.mid``)."""
    return Path(out_wav).with_suffix(OUTPUTS[name].suffix)


def write_outputs(track: RenderedTrack, out_wav: Path, *,
                  exports: Collection[str]) -> RenderResult:
    """Write the WAV, the chosen `exports` and the JSON report of `track`.

    Parameters
    ----------
    track : RenderedTrack
        The render.
    out_wav : Path
        The WAV to write; every other output goes beside it, named after it.
    exports : collection of str
        Names from `daemon.config.EXPORTS`; "wav" and "json" may be listed and change nothing.

    Raises
    ------
    RenderError
        An unknown export name, or an output cannot be written (the outputs written so far
        are removed).
    """
    out_wav = Path(out_wav)
    unknown = sorted(set(exports) - set(OUTPUTS))
    if unknown:
        raise RenderError(f"{out_wav.name}: unknown export {', '.join(unknown)} "
                          f"(choose from {', '.join(OUTPUTS)})")
    names = ("wav", *(name for name in EXPORTS if name in exports))
    futures: dict[str, Future[Path]] = {}
    try:
        pool = _writer_pool()
        for name in names:
            futures[name] = pool.submit(_write, name, track, output_path(out_wav, name))
        wait(futures.values())
        written = {name: future.result() for name, future in futures.items()}
        notes = tuple(f"{name}: {path.name} ({OUTPUTS[name].what})"
                      for name, path in written.items() if name not in ALWAYS)
        report = _write("json", replace(track, notes=(*track.notes, *notes)),
                        output_path(out_wav, "json"))
    except BaseException:
        wait(futures.values())  # every writer has finished: remove the completed outputs
        for future in futures.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                remove_entry(future.result())
        raise
    return RenderResult(wav=out_wav, report=report,
                        exports={name: path for name, path in written.items()
                                 if name not in ALWAYS},
                        lufs=float(track.mastering.lufs),
                        true_peak_db=float(track.mastering.true_peak_db),
                        duration=track.duration, choices=track.choices,
                        fallbacks=track.fallbacks)


@cache
def _writer_pool() -> ThreadPoolExecutor:
    """The writers' threads, kept for the life of the process: matplotlib caches its fonts
    per thread (64 entries, each holding its font files open), so new threads for every
    render would pile up open files and memory in a long-running daemon."""
    return ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="traum-output")


def _write(name: str, track: RenderedTrack, target: Path) -> Path:
    """Run one writer; an `OSError` becomes a `RenderError` naming the output."""
    try:
        OUTPUTS[name].write(track, target)
    except OSError as exc:
        raise RenderError(f"{target}: cannot write the {name} output: "
                          f"{exc.strerror or exc}") from exc
    return target
