"""The arrangement picture, ``FILE.png``: what a producer looks at before listening.

Lanes are rows and bars are columns. Section bands carry the section names; a block marks
where a stem plays, labelled with its file name; below them the plan's energy curve (with
the master's level per bar) and a thin spectrogram strip of the master. The title gives the
prompt, genre, tempo, key, length and loudness. Drawn with matplotlib's Agg canvas (no
pyplot, no display, safe in the daemon's render thread) at `WIDTH_PX` pixels wide.
"""

from __future__ import annotations

import os
import sys
import threading
import zlib
from pathlib import Path

import numpy as np

from daemon.fsutil import atomic_output
from daemon.render.picture import spectrogram_image
from daemon.render.track import RenderedTrack

WIDTH_PX = 1600
DPI = 100
LANE_INCHES = 0.34  # height of one lane row
FIXED_INCHES = 3.1  # title, energy panel, spectrogram strip, axis labels
LEVEL_FLOOR_DB = -36.0  # the level line's bottom, relative to the loudest bar
CHAR_PX = 6.9  # width of one label character at `LABEL_POINTS` (DejaVu Sans, generous)
LABEL_POINTS = 8.0


def use_picture_cache(folder: Path) -> None:
    """Keep matplotlib's font cache in `folder` (the library's cache): the service's home may
    be read-only, and a cache rebuilt on every start costs seconds. Takes effect when the
    first picture of this process is drawn; a MPLCONFIGDIR the user set wins."""
    _CACHE["folder"] = folder


def import_matplotlib() -> None:
    """Import matplotlib once, with MPLCONFIGDIR pointing at the chosen cache only while it
    loads (it fixes its cache folder then): the variable never reaches child processes."""
    with _IMPORT_LOCK:
        if "matplotlib.font_manager" in sys.modules:  # loaded: its cache folder is fixed
            return
        folder = _CACHE.get("folder")
        if folder is None or "MPLCONFIGDIR" in os.environ:
            import matplotlib.font_manager  # noqa: F401
            return
        os.environ["MPLCONFIGDIR"] = str(folder)
        try:
            import matplotlib.font_manager  # noqa: F401
        finally:
            del os.environ["MPLCONFIGDIR"]


_CACHE: dict[str, Path] = {}
_IMPORT_LOCK = threading.Lock()


def write_arrangement_png(track: RenderedTrack, target: Path) -> None:
    """Draw the arrangement of `track` and save it as a PNG (`WIDTH_PX` wide)."""
    import_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lanes = track.lanes
    height = FIXED_INCHES + LANE_INCHES * max(3, len(lanes))
    figure = Figure(figsize=(WIDTH_PX / DPI, height), dpi=DPI)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(3, 1, height_ratios=[LANE_INCHES * max(3, len(lanes)), 0.9, 0.45],
                               hspace=0.08, left=0.09, right=0.99, top=1 - 0.85 / height,
                               bottom=0.45 / height)
    arrangement = figure.add_subplot(grid[0])
    energy = figure.add_subplot(grid[1], sharex=arrangement)
    spectrum = figure.add_subplot(grid[2], sharex=arrangement)
    draw_sections(arrangement, track)
    draw_blocks(arrangement, track, width_px=WIDTH_PX * 0.9)
    draw_energy(energy, track)
    draw_spectrogram(spectrum, track)
    heading, details = title(track)
    figure.text(0.01, 1 - 0.12 / height, heading, ha="left", va="top", fontsize=12.5,
                fontweight="bold")
    figure.text(0.01, 1 - 0.42 / height, details, ha="left", va="top", fontsize=10,
                color="#303848")
    with atomic_output(target) as temp:
        figure.savefig(temp, format="png", dpi=DPI)


def title(track: RenderedTrack) -> tuple[str, str]:
    """The prompt, and a line of genre, tempo, key, length, bars, seed and loudness."""
    plan = track.plan
    prompt = " ".join(plan.prompt.split()) or "(empty prompt)"
    prompt = prompt if len(prompt) <= 150 else prompt[:149] + "…"
    minutes, seconds = divmod(round(track.duration), 60)
    return prompt, (f"{plan.genre} · {plan.bpm:g} BPM · {plan.key} · {minutes}:{seconds:02d} · "
                    f"{plan.bars} bars · seed {plan.seed} · {track.mastering.lufs:.1f} LUFS")


def draw_sections(axes, track: RenderedTrack) -> None:
    """Alternating bands per section, the section names above them, lanes as row labels."""
    plan, lanes = track.plan, track.lanes
    for index, (start, section) in enumerate(zip(plan.section_starts(), plan.structure)):
        axes.axvspan(start, start + section.bars, color="#eef0f4" if index % 2 else "#ffffff",
                     zorder=0)
        axes.axvline(start, color="#9aa3b5", linewidth=0.8, zorder=1)
        axes.text(start + 0.2, -0.7, section.section, fontsize=8.5, va="bottom", ha="left",
                  clip_on=True, fontweight="bold", color="#303848")
    axes.set_xlim(0, plan.bars)
    axes.set_ylim(max(3, len(lanes)) - 0.5, -0.5 - 0.55)  # first lane on top, room for names
    axes.set_yticks(range(len(lanes)), labels=lanes, fontsize=8.5)
    axes.tick_params(axis="x", labelbottom=False, length=0)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def draw_blocks(axes, track: RenderedTrack, *, width_px: float) -> None:
    """One rounded block per region, coloured by category, labelled with the stem's file
    name (shortened to what fits)."""
    from matplotlib.patches import FancyBboxPatch

    px_per_bar = width_px / max(1, track.plan.bars)
    for row, lane in enumerate(track.lanes):
        for region in track.lane_regions(lane):
            bars = region.end_bar - region.start_bar
            axes.add_patch(FancyBboxPatch(
                (region.start_bar + 0.08, row - 0.36), bars - 0.16, 0.72,
                boxstyle="round,pad=0,rounding_size=0.15", linewidth=0.6,
                facecolor=category_colour(region.category), edgecolor="#30384880", zorder=2))
            label = fitted(Path(region.pick.stem.rel_path or region.pick.stem.path).stem,
                           int(((bars - 0.45) * px_per_bar - 4) / CHAR_PX))
            if label:
                axes.text(region.start_bar + 0.3, row, label, fontsize=LABEL_POINTS,
                          va="center", ha="left", zorder=3, color="#111318", clip_on=True)


def draw_energy(axes, track: RenderedTrack) -> None:
    """The plan's energy per section (filled steps) and the master's level per bar (line)."""
    plan = track.plan
    starts = [*plan.section_starts(), plan.bars]
    energies = [section.energy for section in plan.structure]
    axes.fill_between(starts, [*energies, energies[-1]], step="post", color="#f2a65a",
                      alpha=0.55, linewidth=0, label="energy (plan)")
    level = bar_levels_db(track)
    top = level.max(initial=LEVEL_FLOOR_DB)
    axes.plot(np.arange(plan.bars) + 0.5, np.clip((level - top) / -LEVEL_FLOOR_DB + 1, 0, 1),
              color="#2b4c7e", linewidth=1.2, label="level (master)")
    axes.set_ylim(0, 1.05)
    axes.set_yticks([0, 0.5, 1])
    axes.set_ylabel("energy", fontsize=8.5)
    axes.legend(loc="upper right", fontsize=7.5, frameon=True, framealpha=0.85,
                edgecolor="none", ncols=2)
    axes.tick_params(axis="x", labelbottom=False, length=0)
    axes.tick_params(axis="y", labelsize=7.5)


def draw_spectrogram(axes, track: RenderedTrack) -> None:
    """A thin log-frequency spectrogram of the master; bar numbers on the axis below it."""
    image = spectrogram_image(track.bus, track.sample_rate, width=int(WIDTH_PX * 0.9),
                              height=64)
    axes.imshow(image, aspect="auto", extent=(0, track.plan.bars, 0, 1),
                interpolation="nearest")
    axes.set_yticks([])
    axes.set_ylabel("master", fontsize=8.5)
    step = max(1, 4 * round(track.plan.bars / 32 / 4)) if track.plan.bars > 32 else 4
    ticks = np.arange(0, track.plan.bars + 1, step)
    axes.set_xticks(ticks, labels=[str(tick + 1) for tick in ticks], fontsize=7.5)
    axes.set_xlabel("bar", fontsize=8.5)


def bar_levels_db(track: RenderedTrack) -> np.ndarray:
    """RMS level (dBFS) of the master in every bar (bar by bar: no full-length temporaries)."""
    edges = [track.grid.bar(bar) for bar in range(track.plan.bars + 1)]
    power = [float(np.mean(np.square(track.bus[:, a:b]))) if b > a else 0.0
             for a, b in zip(edges[:-1], edges[1:])]
    return 10.0 * np.log10(np.asarray(power) + 1e-12)


def category_colour(category: str) -> str:
    """A stable pastel colour per category name."""
    hue = (zlib.crc32(category.encode()) % 360) / 360.0
    red, green, blue = (0.62 + 0.3 * np.cos(2 * np.pi * (hue + shift)) for shift in
                        (0.0, 1 / 3, 2 / 3))
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def fitted(label: str, chars: int) -> str:
    """`label` cut to `chars` characters with an ellipsis; "" when not even 4 fit."""
    if chars < 4:
        return ""
    return label if len(label) <= chars else label[:chars - 1] + "…"
