"""The kick leads, checked on the mix: percussion that out-pulses the kick waits for later.

In four-on-the-floor genres the kick's pulse must be the strongest periodicity of the groove.
After the mix, every section with a kick is measured the way a listener's tempo sense (and
``bench/fidelity.py``) hears it: the strongest 60–200 BPM periodicity of the full-band onset
envelope (log-mel spectral flux, Fourier tempogram over the section). Where that is not the
plan's tempo by a margin, each percussion lane playing there is heard alone, and the lanes
that pulse strongly at the rival pulse are the culprits. One whose own strongest pulse is off
the beat (a 3-step cycle, five hits a bar) fights the beat and is left out of that section;
offbeat hats, pulsing with the beat, never are. Level alone does not tame a fighter: onset
strength is measured in decibels, and a quieter hit still starts as sharply. A backbeat (a
clap on 2 and 4) that out-pulses the kick is lowered instead: it sounds with the kick, so its
level does decide how much it adds. Its period is two beats, so it pulses at half the tempo
and at 1.5 times it, where the kick's one-beat period has nothing: in house, whose offbeat
hats and bass cancel the kick's own pulse (in antiphase with it at the tempo), the rival is
mostly the second, 186 BPM at 124. A part on the beat adds to the kick's pulse as well, so
in each section only the part that pulses hardest at the rival is lowered, and only once the
section's fighters are gone (in minimal techno, lowering the clap along with the offbeat hats
cost the kick the lead the hats alone won back). The track is mixed again after each step.
Where the kick still does not lead, the part whose onsets fall between the kicks (offbeat
hats: heard alone, its pulse at the tempo points away from the kick's) is lowered in that
section only, and only where that made the kick's lead grow: quieter offbeats can also let the
half tempo through, or unmask a fighter, which then goes as well. Where the kick still does not
lead after that, the kick itself is turned up in that section, as a producer would in a crowded
passage, and again only where its lead grew: onset strength is in decibels, so a louder kick
can also let the parts on the other beats stand out against it. These last steps are heard
without mixing the track again (`Hearing`).

Onsets are computed with `daemon.embed.spectral` (plain numpy), as everywhere in the service.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from functools import partial

import numpy as np

from daemon.compose.plan import Plan
from daemon.config import RenderSettings
from daemon.embed.spectral import mel_filterbank, power_stft
from daemon.render.groove import KICK_CATEGORY
from daemon.render.mix import MixResult, mix_regions, stage_region
from daemon.render.patterns import GenrePattern
from daemon.render.sequence import Grid, Region, render_region, sound_key

#: librosa's onset-strength defaults, over the full band: a hi-hat's flux above 11 kHz is
#: part of what a tempo sense hears (measured without it, kicks "lead" that do not).
N_FFT, HOP, MELS = 2048, 512, 128
TOP_DB = 80.0  # quieter than this below the loudest bin is silence
PULSE_RANGE = (60.0, 200.0)  # BPM range a tempo sense picks a beat from
PULSE_STEP = 0.25  # BPM resolution of the tempogram
TOLERANCE = 0.03  # a pulse within 3 % of the tempo is the tempo
#: The kick leads when its pulse beats every other by this factor: mastering and the level
#: rides after the mix change the onsets a little, so a bare lead is not kept.
LEAD_MARGIN = 1.25
#: A lane heard alone that pulses at the rival this strongly (a share of its own strongest
#: pulse) is one that makes it.
GUILTY_SHARE = 0.5
SOLO_RANGE = (60.0, 600.0)  # a lane heard alone: up to sixteenths at 150 BPM
#: A lane that pulses at the beat or half of it (offbeat hats, a clap on 2 and 4) nearly as
#: strongly as at its own strongest pulse moves with the kick and is never left out (a sparse
#: pattern pulses at every multiple of its period about equally); a syncopated cycle does not.
ALLIED = (0.5, 1.0)
ON_BEAT_SHARE = 0.8
#: A backbeat that out-pulses the kick is lowered by these steps, one mix each: on the beat with
#: the kick, a clap's onset only stands out by its level (by up to 12 dB it stays a backbeat).
BACKBEAT_STEPS_DB = (-6.0, -12.0)
#: The pulses of a two-beat period that a one-beat period lacks (tempo multiples; the next,
#: 2.5, is out of `PULSE_RANGE` at any four-on-the-floor tempo).
BACKBEAT_PULSES = (0.5, 1.5)
#: Then, where the kick still does not lead, the part whose onsets fall between the kicks
#: (offbeat hats) cancels its pulse: in antiphase with it at the tempo. That part is lowered
#: by this much in those sections only (one step: on the tuning library -9 dB, or -6 dB then
#: -12 dB, left the kick leading fewer sections).
OFFBEAT_TRIM_DB = -12.0
#: Last, where the kick still does not lead, it is turned up there by these steps (each kept
#: per section only where its lead grew): a few dB louder than the sections around it, never
#: a new level for the track.
KICK_BOOST_STEPS_DB = (3.0, 6.0)


def mix_leading_kick(regions: Sequence[Region], *, source_for: Callable[[Region], np.ndarray],
                     grid: Grid, plan: Plan, pattern: GenrePattern,
                     settings: RenderSettings) -> tuple[MixResult, list[Region], list[str]]:
    """Mix `regions` (`daemon.render.mix.mix_regions`); in a four-on-the-floor plan, where the
    kick does not lead, leave out percussion that fights the beat and lower a backbeat that
    out-pulses the kick (`BACKBEAT_STEPS_DB`, `backbeats_to_lower`), mixing again after each
    step, then lower the offbeats that still cancel its pulse (`lower_offbeats`), leave out any
    fighter that unmasks, and turn the kick up where it still does not lead (`raise_kick`);
    these last steps are judged on a `Hearing` of the failing sections and cost one mix.
    Returns the mix, the regions it was made of and a note per change."""
    measured: dict[tuple, float] = {}  # lane gains: the same regions, mixed again

    def mix(parts: Sequence[Region], trims: dict[str, float]) -> MixResult:
        return mix_regions(parts, source_for=source_for, grid=grid, plan=plan, pattern=pattern,
                           settings=settings, trims=trims, measured=measured)

    current, trims, notes = list(regions), {}, []
    mixed = mix(current, trims)
    if not plan.four_on_floor:
        return mixed, current, notes
    spans = section_spans(plan, grid)

    def heard(result: MixResult) -> dict[int, tuple[float, float]]:
        return {index: lead_ratio(result.bus[:, slice(*spans[index])], grid.sample_rate,
                                  plan.bpm) for index in kick_sections(current)}

    solos = Solos(source_for=source_for, grid=grid, plan=plan, pattern=pattern)
    leads = heard(mixed)  # each mix is measured once: the offbeat step reads it too
    for step in BACKBEAT_STEPS_DB:
        failing = failing_sections(leads)
        shares = rival_shares(current, failing, solos=solos, bpm=plan.bpm)
        guilty = {key: rival for key, (rival, _) in shares.items() if rival >= GUILTY_SHARE}
        fighters = fighting_lanes(shares, failing)
        fought = {index for _, index in fighters}
        backbeat = backbeats_to_lower(
            {index: pulse for index, pulse in failing.items() if index not in fought},
            guilty, bpm=plan.bpm, lowered=[lane for lane, trim in trims.items() if trim <= step])
        if not fighters and not backbeat:
            break
        current = without(current, set(fighters), plan)
        trims.update(dict.fromkeys(backbeat, step))
        notes += _left_out_notes(fighters, plan)
        notes += [f"{lane} {step:+g} dB: its backbeat out-pulsed the kick" for lane in backbeat]
        mixed = mix(current, trims)
        leads = heard(mixed)
    # The last steps change a lane's level in a few sections: heard without mixing again.
    hearing = Hearing(mixed, current, leads, grid=grid, plan=plan, staged=partial(
        staged_region, source_for=source_for, grid=grid, plan=plan, pattern=pattern))
    current, lowered = lower_offbeats(hearing, current, lowered=set(trims), solos=solos,
                                      plan=plan)
    unmasked: dict[tuple[str, int], float] = {}
    if lowered:
        # Quieter offbeats can unmask a part that fights the beat: it goes too.
        rivals = hearing.rivals()
        unmasked = fighting_lanes(rival_shares(current, rivals, solos=solos, bpm=plan.bpm),
                                  rivals)
        for lane, index in unmasked:
            hearing.set_level(index, [lane], -np.inf)
        current = without(current, set(unmasked), plan)
    current, raised = raise_kick(hearing, current, plan=plan)
    if lowered or unmasked or raised:
        mixed = mix(current, trims)
    return mixed, current, notes + lowered + _left_out_notes(unmasked, plan) + raised


def staged_region(region: Region, result: MixResult, *,
                  source_for: Callable[[Region], np.ndarray], grid: Grid, plan: Plan,
                  pattern: GenrePattern) -> np.ndarray:
    """`region` rendered and staged as the mix `result` staged it (its lane's gain, the
    sections' levels and trims, the sidechain): what it added to the bus before the rides."""
    audio = render_region(region, source_for(region), grid=grid, plan=plan, pattern=pattern)
    stage_region(audio, region, grid=grid, plan=plan, kicks=result.kicks,
                 gain_db=result.lane_gain_db[(region.lane, region.pick.stem.id)])
    return audio


class Hearing:
    """The sections of a mix where the kick does not lead, heard again as lanes change level
    there, without mixing the track again.

    The mix is a sum of staged regions, and a section's level ride scales all of it, so the
    section with a lane `db` louder sounds as the mix with that lane's own audio there
    (staged and ridden as the mix made it) added at the difference. The high-pass sweep into
    a drop and the short ramps between sections are left out of that sum; the guard's choices
    rest on it, and the track is mixed again with them once the choices are made."""

    def __init__(self, mixed: MixResult, regions: Sequence[Region],
                 leads: Mapping[int, tuple[float, float]], *,
                 staged: Callable[[Region, MixResult], np.ndarray], grid: Grid,
                 plan: Plan) -> None:
        """`leads`: section with a kick → its `lead_ratio` reading of `mixed`, made of
        `regions`; `staged` renders a region as a mix staged it."""
        self._mixed, self._regions, self._staged = mixed, list(regions), staged
        self._grid, self._bpm = grid, plan.bpm
        self._spans = section_spans(plan, grid)
        self.readings = {index: reading for index, reading in leads.items()
                         if rival_of(reading) is not None}
        self._buses = {index: mixed.bus[:, slice(*self._spans[index])]
                       for index in self.readings}
        self._levels: dict[tuple[str, int], float] = {}  # (lane, section) → dB over the mix
        self._parts: dict[tuple[str, int], np.ndarray] = {}  # (lane, section) → its audio

    def rivals(self) -> dict[int, float]:
        """Section → the pulse that beats the kick there, as heard now."""
        return failing_sections(self.readings)

    def set_level(self, index: int, lanes: Collection[str], db: float) -> None:
        """Hear `lanes` at `db` over the mix in section `index` (-inf: left out)."""
        self._buses[index] = self._changed(index, lanes, db)
        self.readings[index] = lead_ratio(self._buses[index], self._grid.sample_rate, self._bpm)
        self._levels.update({(lane, index): db for lane in lanes})

    def try_level(self, index: int, lanes: Collection[str], db: float) -> bool:
        """`set_level` if that makes the kick's lead in section `index` grow; whether it did."""
        bus = self._changed(index, lanes, db)
        reading = lead_ratio(bus, self._grid.sample_rate, self._bpm)
        if reading[0] <= self.readings[index][0]:
            return False
        self._buses[index], self.readings[index] = bus, reading
        self._levels.update({(lane, index): db for lane in lanes})
        return True

    def _changed(self, index: int, lanes: Collection[str], db: float) -> np.ndarray:
        bus = self._buses[index]
        for lane in lanes:
            change = 10.0 ** (db / 20.0) - 10.0 ** (self._levels.get((lane, index), 0.0) / 20.0)
            if change:
                bus = bus + np.float32(change) * self._part(lane, index)
        return bus

    def _part(self, lane: str, index: int) -> np.ndarray:
        """What `lane` adds to section `index` of the mix."""
        if (lane, index) not in self._parts:
            self._hear_lane(lane)
        return self._parts[(lane, index)]

    def _hear_lane(self, lane: str) -> None:
        """What `lane` adds to each section heard, staged and ridden as the mix made it. Each
        of its regions is rendered once and only those sections are kept: a region at full
        length takes hundreds of MB in a long track."""
        for index in self.readings:
            self._parts[(lane, index)] = np.zeros_like(self._buses[index])
        for region in self._regions:
            sections = [index for index in self.readings if index in region.sections]
            if region.lane != lane or not sections:
                continue
            audio = self._staged(region, self._mixed)
            origin = self._grid.bar(region.start_bar)
            for index in sections:
                begin, end = self._spans[index]
                piece = audio[:, begin - origin:end - origin]
                self._parts[(lane, index)][:, :piece.shape[1]] += piece * np.float32(
                    10.0 ** (self._mixed.rides_db[index] / 20.0))


def failing_sections(leads: Mapping[int, tuple[float, float]]) -> dict[int, float]:
    """Section → the pulse that beats the kick there, for the sections of `leads` (section →
    its `lead_ratio` reading) where the kick does not lead by `LEAD_MARGIN`."""
    return {index: pulse for index, reading in leads.items()
            if (pulse := rival_of(reading)) is not None}


def fighting_lanes(shares: Mapping[tuple[str, int], tuple[float, float]],
                   rivals: Mapping[int, float]) -> dict[tuple[str, int], float]:
    """(lane, section) → the rival pulse, for each lane of `shares` (`rival_shares`) that
    fights the beat there: it pulses at the section's rival (`GUILTY_SHARE`) and not with the
    beat (`ON_BEAT_SHARE`)."""
    return {(lane, index): rivals[index] for (lane, index), (rival, beat) in shares.items()
            if rival >= GUILTY_SHARE and beat < ON_BEAT_SHARE}


def _left_out_notes(fighters: Mapping[tuple[str, int], float], plan: Plan) -> list[str]:
    return [f"{lane} left out of {plan.structure[index].section}: it pulses at {pulse:.1f} BPM "
            f"against the kick's {plan.bpm:g}" for (lane, index), pulse in fighters.items()]


def raise_kick(hearing: Hearing, regions: Sequence[Region], *,
               plan: Plan) -> tuple[list[Region], list[str]]:
    """Turn the kick up in each section where `hearing` says it does not lead, by each of
    `KICK_BOOST_STEPS_DB` in turn, keeping a step only where the kick's lead grew. Returns
    the regions with those trims and a note per section raised."""
    raised: dict[int, float] = {}
    for step in KICK_BOOST_STEPS_DB:
        for index in hearing.rivals():
            kicks = {region.lane for region in regions
                     if region.category == KICK_CATEGORY and index in region.sections}
            if hearing.try_level(index, kicks, step):
                raised[index] = step
    current = list(regions)
    for step in set(raised.values()):
        current = [_kick_trimmed(region, [index for index, db in raised.items() if db == step],
                                 step) for region in current]
    return current, [f"kick {step:+g} dB in {plan.structure[index].section}: it did not lead "
                     "there" for index, step in sorted(raised.items())]


def _kick_trimmed(region: Region, sections: Sequence[int], step: float) -> Region:
    """`region` at `step` dB in `sections` when it is a kick; any other region unchanged."""
    if region.category != KICK_CATEGORY:
        return region
    return trimmed(region, dict.fromkeys(sections, region.lane), step)


def lower_offbeats(hearing: Hearing, regions: Sequence[Region], *, lowered: Collection[str],
                   solos: Solos, plan: Plan) -> tuple[list[Region], list[str]]:
    """In each section where `hearing` says the kick does not lead, lower the lane that
    cancels its pulse (`cancelling_lanes`; not one of the `lowered` lanes, already quieter
    everywhere) by `OFFBEAT_TRIM_DB`, there only, and only if the kick's lead grew there:
    quieter offbeats can also hand the lead to the half tempo. Returns the regions with those
    trims and a note per trim."""
    offbeats = cancelling_lanes([region for region in regions if region.lane not in lowered],
                                list(hearing.rivals()), solos=solos, bpm=plan.bpm)
    kept = {index: lane for index, lane in offbeats.items()
            if hearing.try_level(index, [lane], OFFBEAT_TRIM_DB)}
    return ([trimmed(region, kept, OFFBEAT_TRIM_DB) for region in regions],
            [f"{lane} {OFFBEAT_TRIM_DB:+g} dB in {plan.structure[index].section}: off the beat, "
             "it cancelled the kick's pulse" for index, lane in sorted(kept.items())])


def cancelling_lanes(regions: Sequence[Region], sections: Sequence[int], *, solos: Solos,
                     bpm: float) -> dict[int, str]:
    """Section → the percussion lane (not the kick) that cancels the kick's pulse there most:
    heard alone, its pulse at the tempo `bpm` has the largest component opposite the kick's
    (its onsets fall between the kicks). Sections where no lane opposes the kick are left
    out."""
    def pulse(region: Region, index: int) -> complex:
        return envelope_pulse(solos.envelopes(region, [index])[index], solos.sample_rate, bpm)

    chosen = {}
    for index in sections:
        playing = [region for region in regions if index in region.sections
                   and region.traits.percussive]
        kicks = [pulse(region, index) for region in playing
                 if region.category == KICK_CATEGORY]
        if not kicks or abs(kick := sum(kicks)) == 0:
            continue
        opposition = {region.lane: -(pulse(region, index) * kick.conjugate()).real / abs(kick)
                      for region in playing if region.category != KICK_CATEGORY}
        lane = max(opposition, key=opposition.get, default=None)
        if lane is not None and opposition[lane] > 0:
            chosen[index] = lane
    return chosen


def trimmed(region: Region, lanes: Mapping[int, str], step: float) -> Region:
    """`region` at `step` dB in the sections where `lanes` (section → lane) names its lane."""
    sections = [index for index, lane in lanes.items()
                if lane == region.lane and index in region.sections]
    if not sections:
        return region
    kept = tuple((index, db) for index, db in region.trims_db if index not in sections)
    return replace(region, trims_db=kept + tuple((index, step) for index in sections))


def envelope_pulse(envelope: np.ndarray, sample_rate: int, bpm: float) -> complex:
    """The Fourier component at `bpm` of an onset envelope (`onset_envelope`, windowed as in
    `tempogram`): its size is the pulse's strength, its angle where in the beat it falls."""
    envelope = _windowed(envelope)
    times = np.arange(envelope.size) * HOP / sample_rate
    return complex(np.exp(-2j * np.pi * bpm / 60.0 * times) @ envelope)


class Solos:
    """Regions heard alone: the onset envelope of a region in a section, computed once for
    the whole guard. A region is rendered again only when a later step asks for sections not
    yet heard (its audio is not kept: a lane at full length takes tens of MB)."""

    def __init__(self, *, source_for: Callable[[Region], np.ndarray], grid: Grid, plan: Plan,
                 pattern: GenrePattern) -> None:
        self._render = lambda region: render_region(region, source_for(region), grid=grid,
                                                    plan=plan, pattern=pattern)
        self._grid = grid
        self._spans = section_spans(plan, grid)
        self._heard: dict[tuple, np.ndarray] = {}
        self.sample_rate = grid.sample_rate

    def envelopes(self, region: Region, sections: Sequence[int]) -> dict[int, np.ndarray]:
        """Section → onset envelope of `region` alone there, for each of `sections`."""
        wanted = [index for index in sections if (sound_key(region), index) not in self._heard]
        if wanted:
            solo = self._render(region)
            for index in wanted:
                begin, end = (position - self._grid.bar(region.start_bar)
                              for position in self._spans[index])
                self._heard[(sound_key(region), index)] = onset_envelope(
                    solo[:, begin:end], self.sample_rate)
        return {index: self._heard[(sound_key(region), index)] for index in sections}


def rival_shares(regions: Sequence[Region], rivals: Mapping[int, float], *, solos: Solos,
                 bpm: float) -> dict[tuple[str, int], tuple[float, float]]:
    """(lane, section) → (rival share, beat share) of each percussion lane but the kick, heard
    alone in a section of `rivals` (section → the pulse that beat the kick there): how
    strongly it pulses at that rival and at the beat `bpm` or half of it (`ALLIED`), as
    shares of its own strongest pulse up to `SOLO_RANGE`."""
    shares = {}
    for region in regions:
        if region.category == KICK_CATEGORY or not region.traits.percussive:
            continue
        sections = [index for index in region.sections if index in rivals]
        for index, envelope in solos.envelopes(region, sections).items():
            bpms, strength = envelope_tempogram(envelope, solos.sample_rate, SOLO_RANGE)
            shares[(region.lane, index)] = (
                _share(bpms, strength, [rivals[index]]),
                _share(bpms, strength, [bpm * factor for factor in ALLIED]))
    return shares


def backbeats_to_lower(rivals: Mapping[int, float], guilty: Mapping[tuple[str, int], float], *,
                       bpm: float, lowered: Sequence[str]) -> list[str]:
    """The lanes to lower next: in each section of `rivals` (section → the pulse that beat the
    kick there, for sections whose fighters are gone) where that pulse is a backbeat's
    (`BACKBEAT_PULSES`), the lane of `guilty` ((lane, section) → its share of the rival, every
    lane there moving with the beat) that pulses hardest at it, unless already `lowered` so
    far. One lane a section: the others may be innocent, and each adds to the beat as well."""
    lanes = set()
    for index, pulse in rivals.items():
        if not any(_near(pulse, bpm * factor) for factor in BACKBEAT_PULSES):
            continue
        suspects = {lane: share for (lane, section), share in guilty.items()
                    if section == index and lane not in lowered}
        if suspects:
            lanes.add(max(suspects, key=suspects.get))
    return sorted(lanes)


def kick_sections(regions: Sequence[Region]) -> list[int]:
    """Indexes of the sections where a kick lane plays, in order."""
    return sorted({index for region in regions if region.category == KICK_CATEGORY
                   for index in region.sections})


def section_spans(plan: Plan, grid: Grid) -> list[tuple[int, int]]:
    """(first sample, end sample) of every section."""
    starts = [*plan.section_starts(), plan.bars]
    return [(grid.bar(a), grid.bar(b)) for a, b in zip(starts[:-1], starts[1:])]


def without(regions: Sequence[Region], left_out: set[tuple[str, int]],
            plan: Plan) -> list[Region]:
    """`regions` with the (lane, section) pairs in `left_out` cut out (a region losing a
    section in its middle becomes two)."""
    starts = [*plan.section_starts(), plan.bars]
    kept = []
    for region in regions:
        run: list[int] = []
        for index in (*region.sections, None):
            if index is not None and (region.lane, index) not in left_out and (
                    not run or index == run[-1] + 1):
                run.append(index)
                continue
            if run:
                kept.append(replace(region, sections=tuple(run), start_bar=starts[run[0]],
                                    end_bar=starts[run[-1] + 1]))
            run = [index] if index is not None and (region.lane, index) not in left_out else []
    return sorted(kept, key=lambda r: (r.start_bar, r.lane))


def lead(audio: np.ndarray, sample_rate: int, bpm: float) -> float | None:
    """None when the kick's tempo `bpm` is the strongest `PULSE_RANGE` pulse of `audio` by
    `LEAD_MARGIN`, else the strongest other pulse (BPM)."""
    return rival_of(lead_ratio(audio, sample_rate, bpm))


def rival_of(reading: tuple[float, float]) -> float | None:
    """None when a `lead_ratio` reading says the kick leads by `LEAD_MARGIN`, else the
    strongest other pulse (BPM)."""
    ratio, rival = reading
    return None if ratio >= LEAD_MARGIN else rival


def lead_ratio(audio: np.ndarray, sample_rate: int, bpm: float) -> tuple[float, float]:
    """(the strongest `PULSE_RANGE` pulse of `audio` at the tempo `bpm` over the strongest
    elsewhere, that other pulse in BPM); the ratio is 0 when the range misses the tempo."""
    bpms, strength = tempogram(audio, sample_rate, PULSE_RANGE)
    beat = np.abs(bpms / bpm - 1.0) < TOLERANCE
    rival = int(np.argmax(np.where(beat, 0.0, strength)))
    if not beat.any() or strength[rival] <= 0:
        return (0.0 if not beat.any() else np.inf), float(bpms[rival])
    return float(strength[beat].max() / strength[rival]), float(bpms[rival])


def tempogram(audio: np.ndarray, sample_rate: int,
              bpm_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(BPMs, strengths) of the periodicities in `bpm_range` of `audio`'s onset envelope
    (`envelope_tempogram`)."""
    return envelope_tempogram(onset_envelope(audio, sample_rate), sample_rate, bpm_range)


def envelope_tempogram(envelope: np.ndarray, sample_rate: int,
                       bpm_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(BPMs, strengths) of an onset envelope's periodicities in `bpm_range`: a Fourier
    tempogram over the whole passage, sampled at least every `PULSE_STEP` BPM (a zero-padded
    FFT of the windowed envelope)."""
    envelope = _windowed(envelope)
    frame_rate = sample_rate / HOP
    size = max(envelope.size, 1 << int(np.ceil(np.log2(60.0 * frame_rate / PULSE_STEP))))
    strength = np.abs(np.fft.rfft(envelope, n=size))
    bpms = np.fft.rfftfreq(size, d=1.0 / frame_rate) * 60.0
    band = (bpms >= bpm_range[0]) & (bpms <= bpm_range[1])
    return bpms[band], strength[band]


def _windowed(envelope: np.ndarray) -> np.ndarray:
    """An onset envelope without its mean, under a Hann window: what the tempogram and the
    pulse phase are taken of."""
    return (envelope - envelope.mean()) * np.hanning(envelope.size)


def onset_envelope(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Spectral flux of the log-mel spectrogram (`MELS` bands, `TOP_DB` range): the mean over
    bands of each band's rise in dB from the previous frame."""
    power = power_stft(np.asarray(audio, dtype=np.float32).mean(axis=0), n_fft=N_FFT, hop=HOP)
    mel = mel_filterbank(sample_rate=sample_rate, n_fft=N_FFT, n_mels=MELS) @ power
    decibels = 10.0 * np.log10(np.maximum(mel, 1e-10))
    decibels = np.maximum(decibels, decibels.max() - TOP_DB)
    return np.maximum(0.0, np.diff(decibels, axis=1)).mean(axis=0)


def _share(bpms: np.ndarray, strength: np.ndarray, pulses: Sequence[float]) -> float:
    """The strongest of `pulses` in a tempogram, as a share of its strongest pulse."""
    near = np.any([np.abs(bpms / pulse - 1.0) < TOLERANCE for pulse in pulses], axis=0)
    peak = strength.max()
    return float(strength[near].max() / peak) if near.any() and peak > 0 else 0.0


def _near(pulse: float, bpm: float) -> bool:
    return abs(pulse / bpm - 1.0) < TOLERANCE
