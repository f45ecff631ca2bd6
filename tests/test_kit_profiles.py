"""Kit profiles (daemon.kits): genre family from names, tempo consensus, keys as heard, the
family of kits whose names say nothing, storage and staleness, `traum kits` and status."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from render_helpers import fake_record
from stored_kits import kit_samples, make_engine, store_kit

from daemon.cli import main
from daemon.compose.rules import load_rules
from daemon.errors import RuleError
from daemon.kits.family import build_library, family_bands, infer_family
from daemon.kits.profile import KitProfile, from_dict, profile_kit, tempo_consensus
from daemon.kits.refresh import load_library
from daemon.store import queries

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "rules")


def loops(*bpms: float, kit: str = "K", folder: str = "Loops") -> list:
    return [replace(fake_record(n, "bass", kind="loop", bpm=bpm, key="A minor", kit=kit),
                    rel_path=f"{folder}/bass_{n}.wav") for n, bpm in enumerate(bpms, start=1)]


@pytest.mark.parametrize(("name", "genre", "family", "styles"), [
    ("Warehouse Techno Vol 1", "techno", "techno", ()),
    ("Berlin Industrial Techno", "techno", "techno", ("industrial",)),
    ("Liquid DnB Sessions", "drum_and_bass", "drum_and_bass", ()),
    ("Deep House Essentials", "deep_house", "house", ()),
    ("Boom Bap Hip Hop", "hip_hop", "hip_hop", ()),
    ("Lo-Fi Beats Tape", "lofi", "hip_hop", ()),
    ("Düsteres Tekkno Paket", "techno", "techno", ("dark",)),
    ("MinimalTechnoTools", "minimal", "techno", ()),
])
def test_genre_words_in_a_kit_name_give_genre_family_and_style(name, genre, family, styles):
    profile = profile_kit(name, loops(128), RULES, heard={})
    assert (profile.genre, profile.family, profile.family_source) == (genre, family, "name")
    assert profile.family_confidence == 1.0
    assert set(styles) <= set(profile.styles)


def test_a_folder_name_names_the_genre_when_the_kit_name_does_not():
    profile = profile_kit("Pack 07", loops(124, folder="Chicago House/Bass Loops"), RULES,
                          heard={})
    assert (profile.genre, profile.family, profile.family_source) == ("house", "house", "folder")
    anonymous = profile_kit("Kit10", loops(172, folder="Loops"), RULES, heard={})
    assert (anonymous.genre, anonymous.family, anonymous.family_source) == (None, None, "none")


def test_tempo_is_the_consensus_of_the_loops_with_half_and_double_time_agreeing():
    assert tempo_consensus([128.0, 128.0, 64.0, 127.9, 140.0]) == (128.0, 0.8)
    assert tempo_consensus([85.0, 170.0, 85.0]) == (85.0, 1.0)
    assert tempo_consensus([]) == (None, 0.0)


def test_keys_are_counted_as_heard_and_corrected_labels_are_counted():
    stems = [fake_record(1, "pad", kind="loop", bpm=138, key="D minor"),
             fake_record(2, "bass", kind="loop", bpm=138, key="D minor"),
             fake_record(3, "bass", kind="loop", bpm=138, key="D minor"),
             fake_record(4, "kick")]
    profile = profile_kit("Trance Anthems", stems, RULES,
                          heard={1: "G minor", 2: "G minor", 3: "D minor"})
    assert profile.keys == (("G minor", 2), ("D minor", 1))
    assert profile.keys_corrected == 2
    assert profile.categories == {"bass": 2, "kick": 1, "pad": 1}
    assert from_dict(json.loads(json.dumps(profile.to_dict()))) == profile
    assert from_dict({**profile.to_dict(), "version": -1}) is None


def named(kit: str, family: str, tempo: float, sound: float) -> KitProfile:
    return KitProfile(kit=kit, genre=family, family=family, family_source="name",
                      family_confidence=1.0, styles=(), tempo=tempo, tempo_confidence=1.0,
                      keys=(), keys_corrected=0, categories={"kick": 1},
                      sound={"kick": tuple(np.full(4, sound) + np.arange(4) * sound)}, stems=1)


def anonymous(kit: str, tempo: float, sound: float) -> KitProfile:
    return replace(named(kit, "techno", tempo, sound), genre=None, family=None,
                   family_source="none", family_confidence=0.0)


def test_a_kit_without_genre_words_takes_the_family_it_sounds_and_moves_like():
    library = [named("Warehouse Techno", "techno", 138, 1.0),
               named("Berlin Techno", "techno", 132, 1.0),
               named("Chicago House", "house", 124, -1.0),
               named("Deep House", "house", 122, -1.0),
               named("Trance Anthems", "trance", 138, 1.0)]
    house = infer_family(anonymous("ST_Pack_07", 123, -1.0), library, RULES.genres)
    assert (house.family, house.family_source) == ("house", "tempo and sound")
    assert house.family_confidence > 0.5
    # Between two techno kits and one trance kit, equally close in tempo: the family of more
    # kits that sound alike wins, and the confidence says it was close.
    techno = infer_family(anonymous("Audio Export 3", 135, 1.0), library, RULES.genres)
    assert techno.family == "techno" and techno.family_confidence < house.family_confidence
    # No named drum & bass kit: only that family's tempo band holds 172 BPM.
    dnb = infer_family(anonymous("Kit10", 172, 1.0), library, RULES.genres)
    assert (dnb.family, dnb.family_source) == ("drum_and_bass", "tempo")
    resolved = build_library([*library, anonymous("Kit10", 172, 1.0)], RULES.genres)
    assert resolved.profile("Kit10").family == "drum_and_bass"
    assert resolved.family_of("deep_house") == "house"


def random_library(seed: int) -> list[KitProfile]:
    """60 kits, a third named: some without tempo, some lacking categories or all sound, a
    zero vector, and vectors of an odd width (as mid-upgrade)."""
    rng = np.random.default_rng(seed)
    kits = []
    for n in range(60):
        family = ("techno", "house", "trance", "hip_hop")[n % 4] if n % 3 == 0 else None
        sound = {category: tuple(rng.normal(size=6)) for category in ("kick", "bass", "pad")
                 if rng.random() < 0.7}
        tempo = None if rng.random() < 0.15 else round(float(rng.uniform(60, 180)), 1)
        kits.append(replace(anonymous(f"Kit{n}", 0.0, 0.0), family=family, tempo=tempo,
                            sound=sound))
    kits[1] = replace(kits[1], sound={"kick": (0.0,) * 3, "bass": tuple(rng.normal(size=3))},
                      tempo=125.5)
    kits[2] = replace(kits[2], sound={"kick": (0.0,) * 6, "pad": tuple(rng.normal(size=6))})
    kits[3] = replace(kits[3], sound={"bass": tuple(rng.normal(size=3))}, tempo=125.0,
                      family="house")
    kits[4] = replace(kits[4], sound={})
    kits[6] = replace(kits[6], sound={"kick": tuple(rng.normal(size=3))})
    return kits


def reference_family(kit, named_kits, scale) -> tuple[str, str, float]:
    """Family, source and unrounded confidence by the definitions, one kit pair at a time."""
    def closeness(tempo, other):
        if tempo is None or other is None:
            return 0.5
        return float(np.exp(-min(abs(tempo * r - other) for r in (1.0, 0.5, 2.0)) / 4.0))

    def similarity(first, second):
        cosines = []
        for category in set(first.sound) & set(second.sound):
            a, b = (np.asarray(k.sound[category], dtype=np.float64) for k in (first, second))
            if a.shape != b.shape:
                continue
            if scale is not None and a.shape == scale[0].shape:
                a, b = (a - scale[0]) / scale[1], (b - scale[0]) / scale[1]
            norm = np.linalg.norm(a) * np.linalg.norm(b)
            if norm > 0:
                cosines.append(float(a @ b) / norm)
        return (1.0 + np.mean(cosines)) / 2.0 if cosines else 0.5

    bands = family_bands(RULES.genres)
    candidates = [f for f, (low, high) in bands.items()
                  if kit.tempo is not None and low <= kit.tempo <= high] or list(bands)
    votes = {}
    for family in candidates:
        kits = [k for k in named_kits if k.family == family]
        default = np.mean([g.bpm_default for g in RULES.genres.values() if g.family == family])
        votes[family] = (sum(closeness(kit.tempo, k.tempo) * similarity(kit, k) for k in kits)
                         if kits else 0.5 * closeness(kit.tempo, float(default)))
    family = min(votes, key=lambda name: (-votes[name], name))
    source = "tempo and sound" if any(k.family == family for k in named_kits) else "tempo"
    return family, source, votes[family] / sum(votes.values())


def test_families_inferred_in_batch_are_those_of_the_kit_by_kit_definition():
    kits = random_library(seed=3)
    named_kits = [kit for kit in kits if kit.family]
    standard = np.array([v for kit in kits for v in kit.sound.values() if len(v) == 6])
    scale = (standard.mean(axis=0), standard.std(axis=0) + 1e-6)
    library = build_library(kits, RULES.genres)
    for kit, inferred in zip(kits, library.profiles):
        if kit.family:
            assert inferred == kit
            continue
        family, source, confidence = reference_family(kit, named_kits, scale)
        assert (inferred.family, inferred.family_source) == (family, source), kit.kit
        assert inferred.family_confidence == round(confidence, 3), kit.kit
        alone = infer_family(kit, named_kits, RULES.genres)  # unstandardised
        family, source, confidence = reference_family(kit, named_kits, None)
        assert (alone.family, alone.family_source) == (family, source), kit.kit
        assert alone.family_confidence == round(confidence, 3), kit.kit


def test_genre_families_are_validated(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    deep = rules / "genres" / "deep_house.toml"
    deep.write_text(deep.read_text().replace('family = "house"', 'family = "minimal"'))
    lofi = rules / "genres" / "lofi.toml"
    lofi.write_text(lofi.read_text().replace('family = "hip_hop"', 'family = "polka"'))
    with pytest.raises(RuleError) as error:
        load_rules(rules)
    message = str(error.value)
    assert "deep_house.toml: family: 'minimal' belongs to family 'techno'" in message
    assert "lofi.toml: family: 'polka' is not a genre" in message


def test_profiles_are_stored_and_computed_again_only_when_stale(tmp_path):
    engine = make_engine(tmp_path)
    ids = store_kit(engine, "Warehouse Techno", kit_samples(138.0, "A minor", 1))
    heard: list[int] = []

    def hear(stems):
        heard.append(len(stems))
        return {}

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    library = engine.config.paths.library
    first = load_library(library, rules, hear=hear)
    assert [p.kit for p in first.profiles] == ["Warehouse Techno"] and heard == [18]
    assert first.profiles[0].tempo == 138.0 and first.profiles[0].family == "techno"
    load_library(library, rules, hear=hear)
    assert heard == [18]  # fresh: read from the store
    lexicon = rules / "lexicon.toml"
    lexicon.write_text(lexicon.read_text() + "\n# edited\n")
    load_library(library, rules, hear=hear)
    assert heard == [18, 18]  # the rules changed
    stem = next(s for s in queries.list_stems(library) if s.id == ids[0])
    assert stem.category == "kick"
    engine.close()


def test_traum_kits_and_status_show_the_profiles(tmp_path, capsys):
    engine = make_engine(tmp_path)
    store_kit(engine, "Trance Anthems", kit_samples(138.0, "G minor", 2, claimed_key="D minor"),
              claimed_key="D minor")
    store_kit(engine, "Kit10", kit_samples(138.0, "A minor", 3, names="anonymous"))
    engine.close()
    config = str(tmp_path / "config.toml")
    assert main(["kits", "--json", "--config", config]) == 0
    kits = {kit["kit"]: kit for kit in json.loads(capsys.readouterr().out)}
    trance = kits["Trance Anthems"]
    assert trance["family"] == "trance" and trance["tempo"] == 138.0
    assert trance["keys"][0] == {"key": "G minor", "stems": 6}  # the labels say D minor
    assert trance["keys_corrected"] == 6
    assert kits["Kit10"]["family_source"] == "tempo and sound"
    assert main(["kits", "--config", config]) == 0
    text = capsys.readouterr().out
    assert "Trance Anthems: trance, 138 BPM, keys G minor x6; 6 key labels corrected" in text
    assert main(["status", "--json", "--config", config]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {kit["kit"] for kit in status["kit_profiles"]} == {"Trance Anthems", "Kit10"}
    assert main(["status", "--config", config]) == 0
    text = capsys.readouterr().out
    assert "kits:\n  Trance Anthems: trance" in text
    assert "\n  Kit10: trance (inferred from tempo and sound, confidence" in text


def test_a_profile_round_trips_through_its_stored_form_and_damage_is_recomputed():
    rng = np.random.default_rng(5)
    profile = KitProfile(
        kit="Warehouse Techno", genre="techno", family="techno", family_source="name",
        family_confidence=1.0, styles=("warehouse",), tempo=138.0, tempo_confidence=0.9,
        keys=(("A minor", 3),), keys_corrected=1, categories={"kick": 2, "bass": 1},
        sound={"kick": tuple(rng.normal(size=74) * 1000), "bass": tuple(rng.normal(size=74))},
        stems=3)
    stored = json.loads(json.dumps(profile.to_dict()))
    assert from_dict(stored) == profile  # float64: every digit kept
    assert "sound" not in profile.summary()
    for damage in ("not base64!", "AAAA"):  # not base64; 3 bytes, not whole float64s
        assert from_dict({**stored, "sound": {"kick": damage}}) is None
    assert from_dict({**stored, "version": 1}) is None  # an older profile is computed again
