"""The temporal matcher on synthetic codes: voting, relaxed verification, segments."""

from dataclasses import replace

import numpy as np
import pytest

from guard.config import MatchSettings
from guard.index import BruteForceIndex
from guard.match import (
    RefFrames, _distinct, _temporally_unique, align, counting_radius, find_segments, segments_of, vector_ids,
    verify, vote,
)
from guard.models import MaskedCodes, Segment

FPS = 4.0
SETTINGS = MatchSettings()


def _random_codes(rng, n):
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def _flip(rng, codes, bits):
    unpacked = np.unpackbits(codes, axis=1)
    for row in unpacked:
        row[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked, axis=1)


@pytest.fixture
def world():
    rng = np.random.default_rng(11)
    refs = {}
    index = BruteForceIndex(256)
    for ref_id in (1, 2):
        codes = _random_codes(rng, 240)  # 60 s at 4 fps
        refs[ref_id] = RefFrames(f"ref {ref_id}", 5.0, np.arange(240) / FPS, codes)
        index.add(vector_ids(ref_id, 240), codes)
    return rng, refs, index


def _scan(index, refs, times, codes):
    hits = index.search(codes, SETTINGS.seed_radius, SETTINGS.max_hits_per_frame)
    return find_segments(times, codes, hits, refs, 1 / FPS, SETTINGS)


def test_relaxed_frames_extend_a_seeded_alignment(world):
    """Most copied frames are beyond the seed radius; offset agreement still accepts them."""
    rng, refs, index = world
    copied = refs[2].codes[40:120]  # ref 10–30 s
    noisy = _flip(rng, copied, 44)  # beyond the seed radius, within the match radius
    strict = rng.choice(80, 6, replace=False)
    noisy[strict] = _flip(rng, copied[strict], 8)  # a few clean frames seed the alignment
    query = np.concatenate([_random_codes(rng, 20), noisy, _random_codes(rng, 20)])
    times = np.arange(len(query)) / FPS
    (segment,) = _scan(index, refs, times, query)
    assert segment.reference_id == 2
    assert segment.query_start == pytest.approx(5.0) and segment.query_end == pytest.approx(25.0)
    assert segment.reference_start == pytest.approx(10.0) and segment.offset == pytest.approx(5.0)
    assert segment.matched_fraction == 1.0


def test_without_seeds_nothing_is_reported(world):
    rng, refs, index = world
    query = _flip(rng, refs[1].codes[0:80], 44)  # every frame beyond the seed radius
    assert _scan(index, refs, np.arange(80) / FPS, query) == []


def test_shorter_than_min_seconds_is_not_reported(world):
    rng, refs, index = world
    query = np.concatenate([_random_codes(rng, 20), refs[1].codes[100:116], _random_codes(rng, 20)])
    times = np.arange(len(query)) / FPS
    assert _scan(index, refs, times, query) == []  # 4 s < 5 s
    refs[1].min_seconds = 3.0
    assert [s.reference_id for s in _scan(index, refs, times, query)] == [1]


def test_speed_change_is_found_with_its_rate(world):
    _, refs, index = world
    q_times = np.arange(0, 40, 1 / FPS)
    ref_idx = np.round((q_times * 1.05 + 2.0) * FPS).astype(int)  # 5 % faster, from ref 2 s
    keep = ref_idx < 240
    (segment,) = _scan(index, refs, q_times[keep], refs[1].codes[ref_idx[keep]])
    assert segment.rate == pytest.approx(1.05, abs=0.01)
    assert segment.reference_start == pytest.approx(2.0, abs=0.3)


def test_two_references_in_one_query_and_determinism(world):
    rng, refs, index = world
    query = np.concatenate([refs[1].codes[0:40], _random_codes(rng, 12), refs[2].codes[200:240]])
    times = np.arange(len(query)) / FPS
    first = _scan(index, refs, times, query)
    assert [(s.reference_id, round(s.query_start, 2)) for s in first] == [(1, 0.0), (2, 13.0)]
    assert [s.to_dict() for s in first] == [s.to_dict() for s in _scan(index, refs, times, query)]


def test_random_queries_never_match(world):
    rng, refs, index = world
    query = _random_codes(rng, 4000)
    assert _scan(index, refs, np.arange(4000) / FPS, query) == []


def test_a_stray_chance_match_does_not_stretch_the_segment(world):
    """An unrelated frame accepted by chance 2 s before the copy must not move its start."""
    rng, refs, index = world
    before = _random_codes(rng, 20)
    stray = 12  # query 3.0 s, 2 s before the copy starts at 5.0 s
    before[stray] = _flip(rng, refs[1].codes[40 - 20 + stray : 40 - 20 + stray + 1], 40)[0]
    query = np.concatenate([before, refs[1].codes[40:100], _random_codes(rng, 20)])
    (segment,) = _scan(index, refs, np.arange(len(query)) / FPS, query)
    assert segment.query_start == pytest.approx(5.0)
    assert segment.query_end == pytest.approx(20.0)


def test_look_alike_scene_without_temporal_structure_is_rejected(world):
    """A query that resembles a whole stretch of the reference equally (a generic look-alike,
    not a copy) is not reported, however close its frames are."""
    rng, refs, index = world
    static = np.repeat(refs[1].codes[100:101], 240, axis=0)  # one reference look, everywhere
    refs[3] = RefFrames("static-ish", 5.0, np.arange(240) / FPS, _flip(rng, static, 6))
    index.add(vector_ids(3, 240), refs[3].codes)
    query = _flip(rng, static[:60], 6)
    assert all(s.reference_id != 3 for s in _scan(index, refs, np.arange(60) / FPS, query))


def test_pieces_of_one_copy_broken_by_a_gap_are_merged(world):
    rng, refs, index = world
    copy = refs[2].codes[20:140].copy()  # ref 5–35 s
    copy[50:64] = _random_codes(rng, 14)  # 3.5 s of damage inside the copy
    (segment,) = _scan(index, refs, np.arange(120) / FPS, copy)
    assert segment.query_start == pytest.approx(0.0) and segment.query_end == pytest.approx(30.0)


def test_a_heavily_damaged_stretch_inside_a_copy_stays_part_of_it(world):
    """14 s of a copy beyond the match radius (a large overlay, a hard crop) still follow the
    reference's motion: they are kept, so one copy is reported, not two."""
    rng, refs, index = world
    copy = _flip(rng, refs[1].codes[40:160], 10)  # ref 10–40 s, lightly re-encoded
    copy[32:88] = _flip(rng, refs[1].codes[72:128], 66)  # query 13–27 s: far beyond match_radius
    query = np.concatenate([_random_codes(rng, 20), copy, _random_codes(rng, 20)])
    (segment,) = _scan(index, refs, np.arange(len(query)) / FPS, query)
    assert segment.reference_id == 1
    assert segment.query_start == pytest.approx(5.0) and segment.query_end == pytest.approx(35.0)


def test_look_alike_frames_next_to_a_copy_are_left_out(world):
    """Frames within match_radius of the aligned reference that match its neighbouring instants
    just as well (a look-alike programme before the copy) do not stretch the copy."""
    rng, refs, index = world
    still = _random_codes(rng, 1)
    codes = np.concatenate([np.repeat(still, 80, axis=0), _random_codes(rng, 160)])
    refs[3] = RefFrames("opens on a still", 5.0, np.arange(240) / FPS, _flip(rng, codes, 4))
    index.add(vector_ids(3, 240), refs[3].codes)
    look_alike = _flip(rng, np.repeat(still, 24, axis=0), 44)  # 6 s, ≤ match_radius, not unique
    query = np.concatenate([_random_codes(rng, 20), look_alike, codes[80:160], _random_codes(rng, 20)])
    (segment,) = _scan(index, refs, np.arange(len(query)) / FPS, query)
    assert segment.reference_id == 3
    assert segment.query_start == pytest.approx(11.0)
    assert segment.query_end == pytest.approx(31.0)
    assert segment.reference_start == pytest.approx(20.0)


def _segment(start, end, rate, frames, distance, reference_id=1):
    return Segment(reference_id=reference_id, reference_title="r", query_start=start, query_end=end,
                   reference_start=start, reference_end=end, offset=0.0, rate=rate,
                   matched_fraction=1.0, score=0.5, matched_frames=frames, mean_distance=distance)


def test_of_two_rates_restating_one_copy_the_clearly_closer_one_is_kept():
    """The stronger restatement is kept unless the other aligns their shared span clearly closer."""
    padded = _segment(5.0, 22.0, 0.915, 61, 17.0)  # more frames: look-alike ones around the copy
    aligned = _segment(8.5, 22.0, 1.0, 53, 8.0)
    other = _segment(40.0, 50.0, 1.0, 30, 5.0)
    kept = _distinct([padded, aligned, other], 256, closer=lambda a, b: a is aligned)
    assert kept == [aligned, other]
    kept = _distinct([padded, aligned, other], 256, closer=lambda a, b: False)
    assert kept == [padded, other]


def test_another_reference_that_explains_a_copy_worse_is_dropped():
    """A query frame shows one picture: a weaker look-alike of another reference over the same
    span goes unless it is as close (a reference that contains the other's footage)."""
    copy = _segment(8.0, 44.0, 1.0, 130, 30.0)
    same_photo = _segment(37.5, 44.0, 0.87, 25, 40.0, reference_id=2)
    assert _distinct([copy, same_photo], 256, closer=lambda a, b: a is copy) == [copy]
    assert _distinct([copy, same_photo], 256, closer=lambda a, b: False) == [copy, same_photo]


def test_another_owners_version_of_the_copied_footage_is_kept_as_a_claim():
    """Between owners, a weaker segment that restates enough of the copy stays (an ownership
    conflict); a short look-alike inside it does not, nor does anything of the same owner."""
    owners = {1: "league", 2: "broadcaster", 3: "league"}
    copy = _segment(8.0, 44.0, 1.0, 130, 10.0)
    version = _segment(9.0, 40.0, 1.0, 110, 40.0, reference_id=2)
    look_alike = _segment(20.0, 25.5, 1.0, 20, 30.0, reference_id=2)
    same_owner = _segment(9.0, 40.0, 1.0, 110, 40.0, reference_id=3)

    def claims(kept, candidate):
        return (owners[kept.reference_id] != owners[candidate.reference_id]
                and candidate.duration >= SETTINGS.conflict_cover * kept.duration)

    def closer(a, b):
        return a is copy

    assert _distinct([copy, version], 256, closer, claims) == [copy, version]
    assert _distinct([copy, look_alike], 256, closer, claims) == [copy]
    assert _distinct([copy, same_owner], 256, closer, claims) == [copy]


def test_masked_readings_count_where_the_plain_codes_are_far(world):
    """Frames whose plain codes are garbled (an overlay moved the whole hash) but whose masked
    reading is close are verified through the masked reading; seeds come from the index."""
    rng, refs, index = world
    copied = refs[1].codes[40:120]
    garbled = _flip(rng, copied, 90)
    garbled[::10] = copied[::10]  # a few frames the plain search seeds on
    masks = np.full(copied.shape, 0xFF, np.uint8)
    masks[:, :8] = 0
    reading = MaskedCodes(codes=copied.copy(), masks=masks)
    reading.codes[:, :8] ^= 0xFF  # what is hidden is wrong, what shows is right
    times = np.arange(80) / FPS
    hits = index.search(garbled, SETTINGS.seed_radius, SETTINGS.max_hits_per_frame)
    assert find_segments(times, garbled, hits, refs, 1 / FPS, SETTINGS) == []
    (segment,) = find_segments(times, garbled, hits, refs, 1 / FPS, SETTINGS, reading)
    assert segment.reference_id == 1 and segment.query_end - segment.query_start == pytest.approx(20.0)


def test_uniqueness_is_worked_out_only_where_it_can_count(world):
    """Verification checks temporal uniqueness only for frames close enough to be accepted or
    to extend a copy; elsewhere it never changes a segment (issue 11: it is most of the cost)."""
    rng, refs, index = world
    levels = [4, 20, 40, 55, 66, 90]  # stretches of 20 frames at every distance, near and far
    copy = np.concatenate([_flip(rng, refs[1].codes[40 + 20 * k:60 + 20 * k], bits) for k, bits in enumerate(levels)])
    query = np.concatenate([_random_codes(rng, 20), copy, _random_codes(rng, 20)])
    times = np.arange(len(query)) / FPS
    hits = index.search(query, SETTINGS.seed_radius, SETTINGS.max_hits_per_frame)
    hypotheses = vote(times, hits, refs, SETTINGS)
    assert hypotheses
    for hypothesis in hypotheses:
        ref = refs[hypothesis.ref_id]
        partial = align(hypothesis, times, query, ref, SETTINGS)
        far = partial.dist >= counting_radius(SETTINGS)
        assert far.any() and not partial.unique[far].any()
        everywhere = replace(partial, unique=_temporally_unique(times, query, ref, hypothesis, partial.dist, SETTINGS))
        assert (segments_of(hypothesis, times, partial, ref, 1 / FPS, SETTINGS)
                == segments_of(hypothesis, times, everywhere, ref, 1 / FPS, SETTINGS)
                == verify(hypothesis, times, query, ref, 1 / FPS, SETTINGS))
