"""The one-shot patterns as a Standard MIDI File (type 1): ``FILE.mid``.

Track 0 holds the tempo, the 4/4 time signature and a marker per section. Every one-shot
lane that plays a step pattern whose instrument has a General MIDI drum note
(``rules/midi.toml``) gets a track of its own on channel 10: one note per hit the mix played,
at its position (swing included) and with its velocity (the pattern's step velocity times the
seeded per-hit variation, as the mix applied it). Loop lanes and tonal one-shots have no drum
note and stay out. Positions are in ticks of `TICKS_PER_BEAT` per quarter note, computed from
each hit's sample position, so the file lines up with the WAV.
"""

from __future__ import annotations

from pathlib import Path

import mido

from daemon.compose.plan import BEATS_PER_BAR
from daemon.fsutil import atomic_output
from daemon.render.sequence import Region, instrument_for, pattern_hits, pattern_rng
from daemon.render.track import RenderedTrack

TICKS_PER_BEAT = 960  # 0.45 ms at 138 BPM: far below what the ear or the 5 ms check sees
DRUM_CHANNEL = 9  # channel 10, counted from 0 as MIDI bytes do
HIT_TICKS = TICKS_PER_BEAT // 4  # notes are held for a sixteenth (drum voices ignore it)

Hit = tuple[int, int, int]  # (tick, note, velocity 1..127)


def write_pattern_midi(track: RenderedTrack, target: Path) -> None:
    """Write the tempo, the section markers and one drum track per patterned one-shot lane."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(conductor_track(track))
    for lane in track.lanes:
        hits = lane_hits(track, lane)
        if hits:
            midi.tracks.append(drum_track(lane, hits))
    with atomic_output(target) as temp:
        midi.save(filename=str(temp))


def conductor_track(track: RenderedTrack) -> mido.MidiTrack:
    """Track name (the prompt), tempo, time signature and one marker per section start."""
    plan = track.plan
    events = [(0, mido.MetaMessage("track_name", name=plan.prompt[:120] or "Traum-Engine")),
              (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(plan.bpm))),
              (0, mido.MetaMessage("time_signature", numerator=BEATS_PER_BAR, denominator=4))]
    events += [(bar * BEATS_PER_BAR * TICKS_PER_BEAT,
                mido.MetaMessage("marker", text=section.section))
               for bar, section in zip(plan.section_starts(), plan.structure)]
    end = plan.bars * BEATS_PER_BAR * TICKS_PER_BEAT
    return _timed_track(events, end=end)


def lane_hits(track: RenderedTrack, lane: str) -> list[Hit]:
    """Every hit of the lane's pattern regions whose instrument has a drum note, in order."""
    hits: list[Hit] = []
    for region in track.lane_regions(lane):
        if region.mode != "pattern":
            continue
        note = track.drum_notes.get(instrument_for(region))
        if note is not None:
            hits += [(tick, note, velocity) for tick, velocity in _region_hits(track, region)]
    return sorted(hits)


def drum_track(lane: str, hits: list[Hit]) -> mido.MidiTrack:
    """A channel-10 track named after the lane; each note ends after a sixteenth or at the
    next hit of the same note, whichever comes first."""
    events = []
    following: dict[int, int] = {}  # note → tick of its next hit, filled from the end
    for tick, note, velocity in reversed(hits):
        off = min(tick + HIT_TICKS, following.get(note, tick + HIT_TICKS))
        following[note] = tick
        events.append((tick, mido.Message("note_on", channel=DRUM_CHANNEL, note=note,
                                           velocity=velocity)))
        events.append((off, mido.Message("note_off", channel=DRUM_CHANNEL, note=note,
                                         velocity=0)))
    named = [(0, mido.MetaMessage("track_name", name=lane))]
    return _timed_track(named + events, end=max(tick for tick, _ in events))


def _region_hits(track: RenderedTrack, region: Region) -> list[tuple[int, int]]:
    """(tick, velocity) of each hit the mix triggered in a pattern region."""
    grid, plan = track.grid, track.plan
    origin = grid.bar(region.start_bar)
    length = grid.bar(region.end_bar) - origin
    ticks_per_sample = BEATS_PER_BAR * TICKS_PER_BEAT / grid.samples_per_bar
    return [(round((origin + offset) * ticks_per_sample), max(1, min(127, round(gain * 127))))
            for offset, gain in pattern_hits(region, grid=grid, plan=plan,
                                             pattern=track.pattern,
                                             rng=pattern_rng(region, plan))
            if 0 <= offset < length]  # what `trigger` plays


def _timed_track(events: list[tuple[int, mido.Message | mido.MetaMessage]], *,
                 end: int) -> mido.MidiTrack:
    """A track from (absolute tick, message) pairs: sorted (a note-off before a note-on at
    the same tick), converted to delta times, closed by end_of_track at `end`."""
    ordered = sorted(events, key=lambda event: (event[0], event[1].type != "note_off"))
    result = mido.MidiTrack()
    now = 0
    for tick, message in ordered:
        result.append(message.copy(time=tick - now))
        now = tick
    result.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return result
