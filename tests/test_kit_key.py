"""Key with a confidence and the kit's key as a prior: bass lines that alone cannot tell
major from minor follow their kit, a stem in another key keeps its own and is marked for
checking by ear, names and the user's word lead."""

from __future__ import annotations

import numpy as np
import pytest
from consensus_helpers import ROOT, analyse_kit, kit_rules, settle

from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.kit_key import KEY_TRUST, KeyEvidence, resolve_keys
from daemon.ingest.rules import load_analysis_rules
from daemon.synth import synthesize_kit


def triad(root: int, third: int, *, bass: bool = False) -> np.ndarray:
    """Chroma of a triad on `root` (index 0 = C); `third` 3 (minor) or 4 (major). A bass
    line sounds tonic and fifth loudly and its third faintly."""
    chroma = np.full(12, 0.02)
    chroma[root % 12] = 1.0
    chroma[(root + 7) % 12] = 0.8
    chroma[(root + third) % 12] = 0.05 if bass else 0.7
    return chroma


def test_a_bass_line_follows_its_kits_major_key():
    stems = [KeyEvidence(chroma=triad(2, 4)), KeyEvidence(chroma=triad(2, 4)),
             KeyEvidence(chroma=triad(2, 3, bass=True))]
    alone = resolve_keys(stems[2:])[0]
    assert alone.key == "D minor" and not alone.trusted  # tonic and fifth: minor by default
    choices = resolve_keys(stems)
    assert [c.key for c in choices] == ["D major"] * 3
    assert choices[2].source == "kit" and "alone it reads D minor" in choices[2].reason
    assert all(c.trusted and c.confidence >= KEY_TRUST for c in choices)


def test_a_stem_in_another_key_keeps_its_own_and_is_checked_by_ear():
    stems = [KeyEvidence(chroma=triad(9, 3)) for _ in range(3)] + [
        KeyEvidence(chroma=triad(6, 4))]
    choices = resolve_keys(stems)
    assert [c.key for c in choices[:3]] == ["A minor"] * 3
    odd = choices[3]
    assert odd.key == "F# major" and not odd.trusted and odd.confidence < KEY_TRUST
    assert "disagrees with its kit's key A minor" in odd.reason


def test_a_stem_read_a_fifth_off_its_kit_follows_it_but_is_still_checked_by_ear():
    """Recorded notes' harmonics lean a stem's chroma to the dominant: alone, an A-minor
    stem clearly reads E minor. A fifth, the relative or the parallel key of its kit's is
    the usual misreading, so the stem follows its kit; the renderer still checks it."""
    stems = [KeyEvidence(chroma=triad(9, 3)) for _ in range(3)] + [
        KeyEvidence(chroma=triad(4, 3))]
    alone = resolve_keys(stems[3:])[0]
    assert alone.key == "E minor"
    odd = resolve_keys(stems)[3]
    assert odd.key == "A minor" and odd.source == "kit"
    assert not odd.trusted and odd.confidence < KEY_TRUST
    assert "alone it reads E minor, a close relative" in odd.reason


@pytest.mark.parametrize(("kit", "stem", "kit_key", "read"),
                         [((7, 4), (11, 3), "G major", "B minor"),
                          ((5, 3), (1, 4), "F minor", "C# major")])
def test_a_stem_read_as_the_mediant_follows_its_kit(kit, stem, kit_key, read):
    """A melody in G major that dwells on B, D and F# reads B minor, the mediant, which
    shares six of its seven notes; a line in F minor on its sixth degree reads C# major.
    Both follow the kit, checked by ear."""
    stems = [KeyEvidence(chroma=triad(*kit)) for _ in range(3)] + [
        KeyEvidence(chroma=triad(*stem))]
    assert resolve_keys(stems[3:])[0].key == read
    odd = resolve_keys(stems)[3]
    assert (odd.key, odd.source, odd.trusted) == (kit_key, "kit", False)
    assert f"alone it reads {read}, a close relative" in odd.reason


def test_names_and_the_user_lead_the_kit_key():
    audio = KeyEvidence(chroma=triad(7, 3, bass=True))  # G, tonic and fifth
    named = resolve_keys([audio, KeyEvidence(named="G major")])
    assert [c.key for c in named] == ["G major", "G major"]
    assert [c.source for c in named] == ["kit", "filename"]
    user = resolve_keys([audio, KeyEvidence(named="G major", user="G minor")])
    assert [c.key for c in user] == ["G minor", "G minor"]
    assert user[1].source == "user" and user[1].confidence == 1.0
    kit_named = resolve_keys([audio], kit_named="G major")
    assert kit_named[0].key == "G major"


def test_lone_flat_and_silent_chroma_are_not_trusted_and_say_why():
    [alone] = resolve_keys([KeyEvidence(chroma=triad(0, 4))])
    assert alone.key == "C major" and not alone.trusted and alone.confidence <= 0.5
    assert "no kit consensus" in alone.reason
    flat, silent = resolve_keys([KeyEvidence(chroma=np.ones(12)),
                                 KeyEvidence(chroma=np.zeros(12))])
    assert (flat.key, flat.trusted, flat.reason) == (None, False,
                                                     "chroma too flat to name a key")
    assert (silent.key, silent.reason) == (None, "no pitched content")


@pytest.mark.parametrize(("key", "seed"), [("D# major", 43), ("A# major", 44)])
def test_a_synthesised_major_kit_gets_its_key_back(trained_classifier, key, seed):
    rules = load_analysis_rules(ROOT / "rules")
    samples = synthesize_kit(bpm=124.0, key=key, seed=seed, names="anonymous", bars=2)
    stems = analyse_kit(samples, rules, CategoryClassifier.load(trained_classifier))
    truth = {s.name: s.key for s in samples}
    keyful = [stem for stem in stems if truth[stem.rel_path]]
    assert any(stem.key != key for stem in keyful)  # alone, the bass lines read minor
    settled = settle(stems, kit_rules())
    assert all(stem.key == key and stem.key_trusted for stem in settled
               if truth[stem.rel_path])
