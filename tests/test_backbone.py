"""The backbone (daemon.render.backbone) and selection with kit profiles: libraries of several
kits, a track built from one kit of its genre family, at most three kits, reasons reported."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from render_helpers import fake_record, settings

from daemon.categories import load_categories
from daemon.compose.arrange import plan_prompt
from daemon.compose.plan import Plan, Section, StemQuery
from daemon.compose.rules import load_rules
from daemon.kits.family import KitLibrary, build_library
from daemon.kits.profile import profile_kit
from daemon.render.backbone import candidate_kits, choose_backbone, wanted_categories
from daemon.render.select import MAX_KITS, select_stems

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "rules")
TABLE = load_categories(ROOT / "rules")
ONE_SHOTS = ("kick", "kick", "snare", "clap", "hihat", "hihat", "cymbal", "perc")
LOOPS = ("bass", "bass", "pad", "arp", "atmo", "drum_loop")


def fake_kit(name: str, bpm: float, key: str, first_id: int, *,
             leave_out: tuple[str, ...] = ()) -> list:
    """A kit's records: drum one-shots and tonal loops at `bpm` in `key`."""
    stems = []
    for offset, category in enumerate((*ONE_SHOTS, *LOOPS)):
        if category in leave_out:
            continue
        loop = category in LOOPS
        tonal = TABLE[category].tonal
        stems.append(replace(
            fake_record(first_id + offset, category, kind="loop" if loop else "oneshot",
                        bpm=bpm if loop else None, key=key if tonal else None, kit=name),
            rel_path=f"{category.title()}s/{category}_{offset:02d}.wav"))
    return stems


def kits_of(*kits: list) -> KitLibrary:
    return build_library([profile_kit(stems[0].kit, stems, RULES, heard={}) for stems in kits],
                         RULES.genres)


MIXED = (fake_kit("Warehouse Techno Vol 1", 138, "A minor", 100),
         fake_kit("Berlin Industrial Techno", 132, "F minor", 200),
         fake_kit("Deep House Essentials", 122, "C minor", 300),
         fake_kit("Chicago House Grooves", 124, "G minor", 400),
         fake_kit("Trance Anthems", 138, "A minor", 500),
         fake_kit("Liquid DnB Sessions", 174, "E minor", 600),
         fake_kit("Boom Bap Hip Hop", 90, "D minor", 700),
         fake_kit("Electro Funk Machines", 128, "A minor", 800))
LIBRARY = kits_of(*MIXED)
STEMS = [stem for kit in MIXED for stem in kit]


def plan_for(prompt: str, *, key: str = "A minor") -> Plan:
    return plan_prompt(prompt, RULES, seed=3, key_counts={key: 1})


def select(plan: Plan, stems, kits: KitLibrary | None = LIBRARY):
    return select_stems(plan, stems, settings=settings(), categories=TABLE, kits=kits)


def backbone(plan: Plan, kits: KitLibrary = LIBRARY):
    return choose_backbone(plan, kits, categories=TABLE, max_stretch=0.25, max_semitones=3)


def test_the_backbone_is_the_family_kit_that_fits_tempo_key_and_lanes():
    chosen = backbone(plan_for("driving industrial techno 137 bpm"))
    assert chosen.kits == ("Warehouse Techno Vol 1",)
    assert chosen.family == "techno"
    assert chosen.family_kits == {"Warehouse Techno Vol 1", "Berlin Industrial Techno"}
    best, runner, third = chosen.ranking[:3]
    assert best.parts["family"] == best.parts["lanes"] == best.parts["key"] == 1.0
    assert runner.kit == "Berlin Industrial Techno"  # the family first, ...
    assert third.kit == "Trance Anthems"  # ... before the same tempo and key in another
    assert runner.parts["moods"] > best.parts["moods"] == 0  # "Industrial" in Berlin's name
    house = backbone(plan_for("deep house 123 bpm", key="C minor"))
    assert house.kits == ("Deep House Essentials",) and house.family == "house"


def test_lanes_come_from_the_backbone_and_a_track_stays_within_three_kits():
    for prompt, family_kits in (
            ("driving industrial techno 137 bpm", {"Warehouse Techno Vol 1",
                                                   "Berlin Industrial Techno"}),
            ("house 124 bpm", {"Deep House Essentials", "Chicago House Grooves"}),
            ("uplifting trance 138 bpm", {"Trance Anthems"})):
        selection = select(plan_for(prompt), STEMS)
        kits = Counter(pick.stem.kit for pick in selection.picks)
        assert len(kits) <= MAX_KITS, (prompt, kits)
        share = sum(n for kit, n in kits.items() if kit in family_kits) / sum(kits.values())
        assert share >= 0.8, (prompt, kits)
        spine = selection.explanation["backbone"]["kits"][0]
        assert spine in family_kits
        assert_backbone_first(selection.picks, spine)


def assert_backbone_first(picks, spine: str) -> None:
    """A lane takes a stem from another kit only when every backbone stem of its category
    already plays in that section or played in that lane before."""
    playing: dict[int, set[int]] = {}
    for pick in picks:
        playing.setdefault(pick.section, set()).add(pick.stem.id)
    for pick in picks:
        if pick.stem.kit == spine:
            continue
        earlier = {p.stem.id for p in picks if p.lane == pick.lane and p.section < pick.section}
        spare = [stem.id for stem in STEMS if stem.kit == spine and stem.category == pick.category
                 and stem.id not in playing[pick.section] | earlier]
        assert not spare, (pick.lane, pick.section, pick.stem.kit, spare)


def test_a_second_backbone_serves_the_core_lanes_the_first_cannot():
    drums_only = fake_kit("Warehouse Techno Drums", 138, "A minor", 100,
                          leave_out=("bass", "pad", "arp", "atmo"))
    tonal = fake_kit("Berlin Techno Synths", 136, "A minor", 200,
                     leave_out=("kick", "snare", "clap", "hihat", "cymbal", "perc",
                                "drum_loop"))
    plan = plan_for("techno 138 bpm")
    chosen = backbone(plan, kits_of(drums_only, tonal))
    # The kit serving more core lanes (bass and a tonal lane) leads; the drums kit joins it.
    assert chosen.kits == ("Berlin Techno Synths", "Warehouse Techno Drums")
    assert "second backbone Warehouse Techno Drums: Berlin Techno Synths has no drums" in (
        chosen.notes)
    picks = select(plan, [*drums_only, *tonal], kits_of(drums_only, tonal)).picks
    assert {pick.stem.kit for pick in picks if pick.category == "bass"} == {
        "Berlin Techno Synths"}
    assert {pick.stem.kit for pick in picks if pick.category == "kick"} == {
        "Warehouse Techno Drums"}
    assert {tier for lane in select(plan, [*drums_only, *tonal], kits_of(
        drums_only, tonal)).explanation["lanes"] for tier in [lane["chosen"]["tier"]]} == {
        "backbone"}


def test_a_genre_no_kit_has_gets_a_note_and_the_closest_kit_serves():
    techno, house = MIXED[0], MIXED[2]
    library = kits_of(techno, house)
    selection = select(plan_for("dubstep 140 bpm", key="A minor"), [*techno, *house], library)
    assert selection.fallbacks[0].startswith(
        "no kit of the dubstep family in the library; the closest kit, Warehouse Techno Vol 1 "
        "(techno), serves")
    assert selection.explanation["backbone"]["kits"] == ["Warehouse Techno Vol 1"]
    assert selection.picks  # it still renders


def test_a_stand_in_never_brings_in_a_kit_from_outside_the_family():
    techno = fake_kit("Warehouse Techno Vol 1", 138, "A minor", 100)
    trance = fake_kit("Trance Anthems", 138, "A minor", 500)
    plan = Plan(prompt="techno", genre="techno", bpm=138.0, key="A minor", seed=1,
                structure=(Section("Drop", 8, 1.0, (StemQuery("kick"), StemQuery("arp"),
                                                    StemQuery("lead"))),))
    selection = select(plan, [*techno, *trance], kits_of(techno, trance))
    lanes = {pick.lane: pick.stem.kit for pick in selection.picks}
    assert lanes == {"kick": "Warehouse Techno Vol 1", "arp": "Warehouse Techno Vol 1"}
    assert "lead: none in library, stand-ins (arp) already play here; lane left out" in (
        selection.fallbacks)


def test_the_explanation_gives_each_lane_its_score_breakdown_and_runner_up():
    selection = select(plan_for("driving industrial techno 137 bpm"), STEMS)
    lanes = selection.explanation["lanes"]
    kick = next(lane for lane in lanes if lane["lane"] == "kick")
    for name in ("genre", "kit", "tempo", "key", "chroma", "role", "similarity"):
        assert name in kick["chosen"]["scores"]
        assert name in kick["runner_up"]["scores"]
    assert kick["chosen"]["total"] >= kick["runner_up"]["total"]
    assert kick["chosen"]["tier"] == "backbone"
    bass = next(lane for lane in lanes if lane["lane"] == "bass")
    assert bass["chosen"]["scores"]["genre"] == 1.0
    assert bass["runner_up"]["kit"] in {"Warehouse Techno Vol 1", "Berlin Industrial Techno"}


def test_candidate_kits_are_the_backbone_and_the_best_fitting_kits_of_each_category():
    plan = plan_for("driving industrial techno 137 bpm")
    chosen = backbone(plan)
    wanted = wanted_categories(plan, TABLE)
    assert {"kick", "bass", "hihat"} <= wanted
    shortlist = candidate_kits(chosen, LIBRARY, wanted, limit=2)
    assert shortlist[0] == chosen.kits[0]
    ranked = [fit.kit for fit in chosen.ranking]
    for category in wanted:
        having = [kit for kit in ranked if LIBRARY.profile(kit).categories.get(category)]
        assert set(having[:2]) <= set(shortlist), category
    # Every kit in the shortlist is there for a category: none is read for nothing.
    assert all(any(kit in [k for k in ranked if LIBRARY.profile(k).categories.get(c)][:2]
                   for c in wanted) or kit in chosen.kits for kit in shortlist)
    assert len(shortlist) < len(MIXED)
    # A library with fewer kits than the limit is searched whole.
    assert set(candidate_kits(chosen, LIBRARY, wanted)) == {kit[0].kit for kit in MIXED}


def test_a_track_chosen_among_the_candidate_kits_is_the_track_chosen_among_all():
    """With the default limit above the library's size, selection is unchanged; with a
    small limit, the track still keeps to its family and to three kits."""
    for prompt in ("driving industrial techno 137 bpm", "house 124 bpm"):
        plan = plan_for(prompt)
        chosen = backbone(plan)
        wanted = wanted_categories(plan, TABLE)
        whole = select(plan, STEMS)
        for limit in (32, 2):
            kits = set(candidate_kits(chosen, LIBRARY, wanted, limit=limit))
            narrowed = select(plan, [stem for stem in STEMS if stem.kit in kits])
            if limit == 32:
                assert narrowed.picks == whole.picks and narrowed.fallbacks == whole.fallbacks
            used = Counter(pick.stem.kit for pick in narrowed.picks)
            family = sum(n for kit, n in used.items() if kit in chosen.family_kits)
            assert len(used) <= MAX_KITS and family >= 0.8 * sum(used.values()), (prompt, limit)
