"""The calibrated copy probability (guard.calibration) and its retraining script."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from guard import calibration
from guard.calibration import FEATURES, Calibration, CalibrationError
from guard.config import MatchSettings
from guard.errors import GuardError
from guard.models import Segment
from guard.search import fuse

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _segment(modality="video", start=10.0, end=25.0, fraction=0.8, frames=48, distance=20.0, uniqueness=0.8,
             ref_id=1, offset=5.0):
    return Segment(reference_id=ref_id, reference_title="r", query_start=start, query_end=end,
                   reference_start=start + offset, reference_end=end + offset, offset=offset, rate=1.0,
                   matched_fraction=fraction, score=0.5, matched_frames=frames, mean_distance=distance,
                   modality=modality, uniqueness=uniqueness)


def _audio(start=10.0, end=25.0, fraction=0.15, landmarks=120, offset=5.0, ref_id=1):
    return _segment("audio", start, end, fraction, landmarks, 0.0, 1.0, ref_id, offset)


def _p(segment: Segment, model: Calibration | None = None) -> float:
    return float((model or calibration.default()).probabilities([segment])[0])


# -- the shipped model ------------------------------------------------------------------------


def test_the_shipped_model_loads_and_says_what_it_was_trained_on():
    model = calibration.default()
    data = json.loads((Path(calibration.__file__).parent / "data" / calibration.DEFAULT_FILE).read_text())
    assert data["format"] == calibration.FORMAT and data["version"] == calibration.VERSION
    assert data["features"] == list(FEATURES)
    assert 0.0 < model.threshold < 1.0
    assert all(w >= 0 for w in model.coefficients), "more evidence never lowers the probability"
    training = data["training"]
    assert training["corpus_seed"] != training["evaluation_seed_excluded"] == 7, "never the evaluation corpus"
    assert "false_incident_rate" in data and data["false_incident_rate"]["rule"]
    assert Calibration.from_dict(model.to_dict()) == model


def test_other_versions_formats_and_feature_lists_are_refused_clearly(tmp_path):
    good = calibration.default().to_dict()
    for bad, says in [({**good, "version": 2}, "version 2 is not supported"),
                      ({**good, "format": "something-else"}, "not a guard calibration model"),
                      ({**good, "features": list(FEATURES)[:-1]}, "features"),
                      ({**good, "coefficients": [1.0]}, "coefficients"),
                      ({**good, "threshold": 1.5}, "threshold"),
                      ({key: v for key, v in good.items() if key != "intercept"}, "malformed"),
                      ([1, 2, 3], "not a guard calibration model")]:
        with pytest.raises(CalibrationError, match=says) as caught:
            Calibration.from_dict(bad)
        assert isinstance(caught.value, GuardError)
    path = tmp_path / "model.json"
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(path)
    path.write_text(json.dumps({**good, "version": 99}))
    with pytest.raises(CalibrationError, match="version 99"):
        Calibration.load(path)


def test_a_saved_model_reads_back_the_same_with_its_isotonic_step(tmp_path):
    model = Calibration((0.5,) * len(FEATURES), -2.0, 0.4, isotonic=((0.0, 0.5, 1.0), (0.0, 0.2, 1.0)),
                        info={"training": {"corpus_seed": 11}})
    model.save(tmp_path / "m.json")
    again = Calibration.load(tmp_path / "m.json")
    assert again == model and again.info["training"] == {"corpus_seed": 11}
    x = calibration.feature_matrix([_segment(), _audio()])
    assert np.allclose(again.predict(x), model.predict(x))


# -- probabilities ------------------------------------------------------------------------------


def test_probabilities_are_in_0_1_for_any_segment():
    rng = np.random.default_rng(5)
    segments = []
    for _ in range(300):
        start = float(rng.uniform(0, 100))
        segments.append(_segment(str(rng.choice(["video", "video-mirrored", "audio", "audio+video"])), start,
                                 start + float(rng.uniform(0.5, 600)), float(rng.uniform(0, 1)),
                                 int(rng.integers(0, 5000)), float(rng.uniform(0, 256)), float(rng.uniform(0, 1))))
    p = calibration.default().probabilities(segments)
    assert p.shape == (300,) and np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert calibration.default().probabilities([]).shape == (0,)


def test_probability_grows_with_matched_fraction_length_and_closeness():
    model = calibration.default()
    by_fraction = [_p(_segment(fraction=f), model) for f in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)]
    by_length = [_p(_segment(end=10.0 + s, frames=int(3.2 * s)), model) for s in (5, 8, 12, 20, 40, 120)]
    by_distance = [_p(_segment(distance=d), model) for d in (50, 40, 30, 20, 10, 0)]
    by_landmarks = [_p(_audio(landmarks=n), model) for n in (20, 40, 80, 160, 320)]
    for name, values in [("fraction", by_fraction), ("length", by_length), ("closeness", by_distance),
                         ("landmarks", by_landmarks)]:
        assert all(b >= a for a, b in zip(values, values[1:])), (name, values)
    assert by_length[-1] > by_length[0] and by_landmarks[-1] > by_landmarks[0]


@pytest.mark.parametrize("video, audio", [
    (_segment(), _audio()),  # a clean copy heard and seen
    (_segment(fraction=0.55, frames=20, distance=40.0, uniqueness=0.6), _audio()),  # weak picture
    (_segment(), _audio(fraction=0.05, landmarks=30)),  # weak sound (a noisy room)
    (_segment(fraction=0.55, frames=20, distance=45.0, uniqueness=0.56),
     _audio(start=9.5, end=25.8, fraction=0.04, landmarks=20, offset=5.3)),  # both weak, sound a little wider
    (_segment(start=12.0, end=20.0, frames=30), _audio(start=4.0, end=30.0, landmarks=400)),  # sound much wider
])
def test_audio_and_video_evidence_of_one_copy_score_higher_than_either_alone(video, audio):
    [fused] = fuse([video], [audio])
    assert fused.modality == "audio+video"
    model = calibration.default()
    p_video, p_audio, p_fused = model.probabilities([video, audio, fused])
    assert p_fused > max(p_video, p_audio), (p_video, p_audio, p_fused)


def test_probability_sets_each_score_and_leaves_the_rest():
    segments = [_segment(), _audio(), _segment("video-mirrored", fraction=0.6)]
    out = calibration.default().probability(segments)
    assert [s.score for s in out] == pytest.approx(calibration.default().probabilities(segments).tolist())
    assert [replace(s, score=0.5) for s in out] == segments
    assert [s.score for s in segments] == [0.5, 0.5, 0.5], "the input is not changed"


# -- the decision -------------------------------------------------------------------------------


def test_segments_under_the_threshold_raise_nothing():
    model = Calibration((1.0, 0.5, 4.0, 2.0, 1.0, 0.5, 0.3), -8.0, 0.5)
    strong = _segment(fraction=0.95, frames=100, distance=8.0, end=45.0)
    weak = _segment(fraction=0.5, frames=12, distance=48.0, uniqueness=0.55, end=15.0)
    assert _p(strong, model) > 0.5 > _p(weak, model)
    settings = MatchSettings()
    kept = calibration.decide([weak, strong], settings, model)
    assert [s.query_end for s in kept] == [45.0] and kept[0].score == pytest.approx(_p(strong, model))
    assert len(calibration.decide([weak, strong], settings.replace(min_probability=0.0), model)) == 2
    assert calibration.decide([weak, strong], settings.replace(min_probability=1.0), model) == []
    raw = calibration.decide([weak, strong], settings.replace(calibrated=False), model)
    assert raw == [weak, strong] and raw[0].score == 0.5, "calibration off: raw segments, raw scores"


def test_the_shipped_threshold_drops_a_weak_stray_and_keeps_a_clear_copy():
    settings = MatchSettings()
    clear = _segment(fraction=0.95, frames=120, distance=10.0, uniqueness=0.95, end=50.0)
    stray = _audio(end=13.2, fraction=0.01, landmarks=1)
    kept = calibration.decide([stray, clear], settings)
    assert kept and kept[-1].query_end == 50.0 and kept[-1].score >= calibration.default().threshold
    assert all(s.modality != "audio" for s in kept)


def test_reliability_bins_predicted_against_observed():
    rows = calibration.reliability([0.05, 0.08, 0.55, 0.95, 0.97, 1.0], [0, 0, 1, 1, 1, 1], bins=10)
    assert len(rows) == 10 and sum(r["count"] for r in rows) == 6
    assert rows[0] == {"low": 0.0, "high": 0.1, "count": 2, "predicted": 0.065, "observed": 0.0}
    assert rows[9]["count"] == 3 and rows[9]["observed"] == 1.0
    table = calibration.reliability_markdown(rows)
    assert "| 0.9–1.0 | 3 | 0.973 | 1.000 |" in table and "0.1–0.2" not in table


# -- retraining ---------------------------------------------------------------------------------


def _fake_scans(rng: np.random.Generator) -> tuple[dict, dict]:
    """Labelled segments like the training scans' (copies: long, close, matched; strays: not)."""
    files = []
    for k in range(24):
        kind = "query" if k < 16 else "negative"
        shipped, relaxed = [], []
        if kind == "query":
            copy = _segment(rng.choice(["video", "audio+video", "audio"]), 5.0, 5.0 + float(rng.uniform(8, 30)),
                            float(rng.uniform(0.6, 1.0)), int(rng.integers(30, 300)), float(rng.uniform(5, 35)),
                            float(rng.uniform(0.7, 1.0)))
            shipped.append(copy)
            relaxed.append(copy)
        for _ in range(int(rng.integers(0, 3))):
            relaxed.append(_segment(rng.choice(["video", "audio"]), 40.0, 40.0 + float(rng.uniform(5, 9)),
                                    float(rng.uniform(0.3, 0.65)), int(rng.integers(8, 40)),
                                    float(rng.uniform(30, 50)), float(rng.uniform(0.35, 0.6))))

        def rows(segments, copy_first):
            return [{"features": calibration.features(s), "label": int(copy_first and i == 0), "raw_score": s.score}
                    for i, s in enumerate(segments)]

        files.append({"id": f"f{k}", "kind": kind, "family": "x", "duration": 60.0 if kind == "query" else 600.0,
                      "shipped": rows(shipped, kind == "query"), "relaxed": rows(relaxed, kind == "query")})
    manifest = {"seed": 11, "queries": [f for f in files if f["kind"] == "query"],
                "negatives": [f for f in files if f["kind"] == "negative"]}
    return {"files": files, "bits": 256, "seed": 11}, manifest


def test_retraining_on_a_small_labelled_set_writes_a_valid_model(tmp_path, capsys):
    pytest.importorskip("sklearn")
    sys.path.insert(0, str(SCRIPTS))
    try:
        import train_calibration
    finally:
        sys.path.remove(str(SCRIPTS))
    scans, manifest = _fake_scans(np.random.default_rng(3))
    model, report = train_calibration.train(scans, manifest)
    model.save(tmp_path / "model.json")
    again = Calibration.load(tmp_path / "model.json")
    assert again == model and all(w >= 0 for w in again.coefficients)
    assert again.info["training"]["corpus_seed"] == 11 and again.info["training"]["copies"] == 16
    assert "Brier" in report and "threshold" in report
    # the threshold it chose lets nothing on the training negatives through, whatever the pass
    on_negatives = [again.predict(np.asarray([s["features"] for s in f[key]]).reshape(-1, len(FEATURES)))
                    for f in scans["files"] if f["kind"] == "negative" for key in ("shipped", "relaxed")]
    assert max(float(p.max(initial=0.0)) for p in on_negatives) < again.threshold
    copies = again.predict(np.asarray([f["shipped"][0]["features"] for f in scans["files"] if f["kind"] == "query"]))
    assert (copies >= again.threshold).mean() > 0.8, "and keeps most copies"
    with pytest.raises(SystemExit):
        train_calibration.main([str(tmp_path), "--seed", "7"])
    assert "seed 7 is the evaluation corpus" in capsys.readouterr().err
    assert not (tmp_path / "corpus.json").exists(), "refused before building anything"
