"""The calibrated probability that a segment is a copy (issue 12).

A segment's :attr:`~guard.models.Segment.score` leaves the search as the probability, learnt on
a training corpus, that it is a real copy of the reference it names. The model is a logistic
regression over a few features of the segment (:data:`FEATURES`), shipped as a small versioned
JSON file (``guard/data/calibration-v1.json``) and applied with NumPy only: scikit-learn fits
it (``scripts/train_calibration.py``), it is never needed at run time. The file also holds the
decision threshold, chosen for a stated false-incident rate: :func:`decide` drops segments
below it, so they raise no incident (``match.min_probability`` overrides it).

The features come in two blocks, one per kind of evidence: the picture's (closeness of the
matched frames, their temporal uniqueness, the span's length) is 0 for a segment found by its
sound only, the sound's (``has_sound``) is 0 for a picture-only one; the matched fraction and
the number of matched items are shared. Every feature is 0 or more and so is every weight but
the intercept (the training drops a feature whose weight comes out negative and fits again).
So more evidence never lowers the probability, and an ``audio+video`` segment, whose features
are each at least those of its parts (:func:`guard.search.fuse`: the picture's alignment and
span or more, the larger matched fraction, the sum of matched items), scores higher than
either part alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from guard.config import MatchSettings
from guard.errors import FormatError
from guard.models import Segment

#: The model file's format name and the only version this code reads.
FORMAT = "guard-calibration"
VERSION = 1
#: The model guard ships (package data).
DEFAULT_FILE = "calibration-v1.json"

#: What the model looks at, in this order. ``picture_*`` are 0 for a segment found by its sound
#: only; ``log_matched`` counts matched frames and landmarks together (a fused segment sums them).
FEATURES = (
    "has_picture",  # the picture matched (video, video-mirrored, … and audio+video)
    "has_sound",  # the sound matched (audio and audio+video)
    "matched_fraction",  # share of the span's frames (landmarks) that matched
    "picture_closeness",  # 1 − mean Hamming distance of the matched frames / (bits / 2)
    "picture_uniqueness",  # share of matched frames closer to their instant than to the reference seconds away
    "picture_log_seconds",  # log of the span's length in seconds
    "log_matched",  # log(1 + matched frames and landmarks)
)


class CalibrationError(FormatError):
    """A calibration model file this version of guard cannot read."""


def has_picture(modality: str) -> bool:
    """Whether a segment of this modality was found (at least) by its picture."""
    return modality.startswith("video") or modality == "audio+video"


def has_sound(modality: str) -> bool:
    """Whether a segment of this modality was found (at least) by its sound."""
    return modality in ("audio", "audio+video")


def features(segment: Segment, bits: int = 256) -> list[float]:
    """The :data:`FEATURES` of one segment; ``bits``: the picture signal's code length."""
    picture = has_picture(segment.modality)
    closeness = min(max(1.0 - segment.mean_distance / (bits / 2), 0.0), 1.0)
    return [
        float(picture),
        float(has_sound(segment.modality)),
        min(max(segment.matched_fraction, 0.0), 1.0),
        closeness if picture else 0.0,
        min(max(segment.uniqueness, 0.0), 1.0) if picture else 0.0,
        math.log(max(segment.duration, 1.0)) if picture else 0.0,
        math.log1p(max(segment.matched_frames, 0)),
    ]


def feature_matrix(segments: Iterable[Segment], bits: int = 256) -> np.ndarray:
    """``(n, len(FEATURES))`` features of ``segments``."""
    rows = [features(s, bits) for s in segments]
    return np.asarray(rows, np.float64).reshape(len(rows), len(FEATURES))


@dataclass(frozen=True)
class Calibration:
    """A fitted model: ``p = σ(intercept + coefficients · features)``, then the optional isotonic
    map (piecewise linear through ``isotonic``'s points), and the decision ``threshold``.

    ``info`` keeps what the file says about where the model comes from (the training corpus,
    its seed and commit, the cross-validated scores) and the false-incident rate the threshold
    was chosen for.
    """

    coefficients: tuple[float, ...]
    intercept: float
    threshold: float
    bits: int = 256
    isotonic: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(FEATURES):
            raise CalibrationError(f"calibration model has {len(self.coefficients)} coefficients for "
                                   f"{len(FEATURES)} features")
        if not 0.0 <= self.threshold <= 1.0:
            raise CalibrationError(f"calibration threshold {self.threshold} is not in [0, 1]")

    # -- applying ---------------------------------------------------------------------------

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of feature rows ``x`` (``(n, len(FEATURES))``)."""
        logit = self.intercept + np.asarray(x, np.float64) @ np.asarray(self.coefficients, np.float64)
        p = 1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0)))
        if self.isotonic is not None:
            p = np.interp(p, self.isotonic[0], self.isotonic[1])
        return np.clip(p, 0.0, 1.0)

    def probabilities(self, segments: list[Segment]) -> np.ndarray:
        """The probability that each segment is a copy."""
        if not segments:
            return np.zeros(0)
        return self.predict(feature_matrix(segments, self.bits))

    def probability(self, segments: list[Segment]) -> list[Segment]:
        """``segments`` with their ``score`` set to the calibrated probability (copies)."""
        return [replace(s, score=float(p)) for s, p in zip(segments, self.probabilities(segments))]

    # -- the file ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see :meth:`from_dict`)."""
        out: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "model": "logistic" + ("+isotonic" if self.isotonic else ""),
            "features": list(FEATURES), "coefficients": list(self.coefficients), "intercept": self.intercept,
            "bits": self.bits, "threshold": self.threshold,
            "isotonic": None if self.isotonic is None else {"x": list(self.isotonic[0]), "y": list(self.isotonic[1])},
        }
        return {**out, **{k: v for k, v in self.info.items() if k not in out}}

    @classmethod
    def from_dict(cls, data: Any) -> "Calibration":
        """A model from its JSON form; :class:`CalibrationError` for another format, version or
        feature list, or a malformed file."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"not a guard calibration model (format {FORMAT!r} expected)")
        if data.get("version") != VERSION:
            raise CalibrationError(f"calibration model version {data.get('version')!r} is not supported "
                                   f"(this guard reads version {VERSION}): retrain it with "
                                   "scripts/train_calibration.py or upgrade guard")
        if data.get("features") != list(FEATURES):
            raise CalibrationError(f"calibration model features {data.get('features')!r} differ from this "
                                   f"guard's {list(FEATURES)}")
        try:
            iso = data.get("isotonic")
            isotonic = None if iso is None else (tuple(float(v) for v in iso["x"]), tuple(float(v) for v in iso["y"]))
            if isotonic is not None and (len(isotonic[0]) != len(isotonic[1]) or len(isotonic[0]) < 2):
                raise ValueError("isotonic x and y must be two lists of the same length (2 or more)")
            known = {"format", "version", "model", "features", "coefficients", "intercept", "bits", "threshold",
                     "isotonic"}
            return cls(coefficients=tuple(float(c) for c in data["coefficients"]),
                       intercept=float(data["intercept"]), threshold=float(data["threshold"]),
                       bits=int(data.get("bits", 256)), isotonic=isotonic,
                       info={k: v for k, v in data.items() if k not in known})
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed calibration model: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """A model from a JSON file."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"cannot read calibration model {path}: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


@cache
def default() -> Calibration:
    """The model guard ships (``guard/data/calibration-v1.json``), read once."""
    text = resources.files("guard").joinpath("data", DEFAULT_FILE).read_text()
    return Calibration.from_dict(json.loads(text))


def decide(segments: list[Segment], settings: MatchSettings, model: Calibration | None = None) -> list[Segment]:
    """Where segments leave the search (files and live alike): each ``score`` becomes the
    calibrated probability and the segments under ``settings.min_probability`` (default: the
    model's threshold) are dropped, so they raise no incident. With ``settings.calibrated``
    off, ``segments`` unchanged (raw scores, every segment: what retraining looks at)."""
    if not settings.calibrated or not segments:
        return segments
    model = model or default()
    floor = model.threshold if settings.min_probability is None else settings.min_probability
    return [s for s in model.probability(segments) if s.score >= floor]


def reliability(probabilities: Iterable[float], labels: Iterable[int], bins: int = 10) -> list[dict[str, Any]]:
    """Predicted against observed: for each of ``bins`` equal-width bins of probability, how many
    segments fell in it, their mean probability and the share of them that were copies."""
    p = np.asarray(list(probabilities), np.float64)
    y = np.asarray(list(labels), np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for k in range(bins):
        mine = which == k
        count = int(mine.sum())
        rows.append({"low": k / bins, "high": (k + 1) / bins, "count": count,
                     "predicted": round(float(p[mine].mean()), 3) if count else None,
                     "observed": round(float(y[mine].mean()), 3) if count else None})
    return rows


def reliability_markdown(rows: list[dict[str, Any]]) -> str:
    """The :func:`reliability` bins as a Markdown table (empty bins left out)."""
    lines = ["| probability | segments | mean predicted | observed copy rate |", "|---|---:|---:|---:|"]
    lines += [f"| {r['low']:.1f}–{r['high']:.1f} | {r['count']} | {r['predicted']:.3f} | {r['observed']:.3f} |"
              for r in rows if r["count"]]
    return "\n".join(lines)
