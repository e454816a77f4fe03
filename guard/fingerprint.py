"""Sampled frames → fingerprints: bar removal, resize, batched hashing, uninformative frames dropped."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import numpy as np

from guard import decode, preprocess
from guard.config import MatchSettings
from guard.models import Fingerprint, MaskedCodes
from guard.signals import FrameSignal, get_signal, hamming

#: Overlay analysis looks at frames this many times the signal's input size (16×16 → 64×64).
DETAIL_FACTOR = 4


class Fingerprinter:
    """Hashes frame batches with one signal at one sampling rate."""

    def __init__(self, signal: str | FrameSignal, sample_fps: float = 4.0, fast_decode: bool = True):
        self.signal = get_signal(signal) if isinstance(signal, str) else signal
        self.sample_fps = sample_fps
        self.decode_options = decode.DecodeOptions(sample_fps=sample_fps, fast=fast_decode)

    def _prepare(self, batch: decode.FrameBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bar boxes, frames at the signal's input size, and which frames are informative."""
        boxes = preprocess.detect_bars(batch.grey)
        frames = preprocess.crop_resize(batch.grey, boxes, self.signal.input_size)
        return boxes, frames, preprocess.informative(frames)

    def hash_batch(self, batch: decode.FrameBatch) -> tuple[np.ndarray, np.ndarray]:
        """Times and codes of a batch's informative frames, bars removed."""
        _, frames, keep = self._prepare(batch)
        return batch.times[keep], self.signal.hash_batch(frames[keep])

    def hash_batches(self, batches: Iterable[decode.FrameBatch]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """:meth:`hash_batch` over a stream of batches."""
        for batch in batches:
            yield self.hash_batch(batch)

    def fingerprint_file(
        self,
        path: str | os.PathLike,
        progress: Callable[[float], None] | None = None,
        av_options: dict | None = None,
        overlays: bool = False,
    ) -> Fingerprint:
        """Fingerprint a whole file; ``progress`` receives media seconds done after each batch.

        With ``overlays``, frames partly hidden by a still overlay also get a masked reading
        (:attr:`Fingerprint.masked`) — what scans want, references do not.
        """
        batches = decode.sample_frames(path, self.decode_options, av_options)
        return self.fingerprint_batches(batches, progress, overlays=overlays)

    def fingerprint_batches(
        self,
        batches: Iterable[decode.FrameBatch],
        progress: Callable[[float], None] | None = None,
        max_seconds: float | None = None,
        overlays: bool = False,
    ) -> Fingerprint:
        """Fingerprint a stream of batches, stopping after ``max_seconds`` of media if given."""
        times, codes, cells, motion, last, previous = [], [], [], [], 0.0, None
        for batch in batches:
            if overlays:
                t, c, frames, moved, previous = self._hash_with_motion(batch, previous)
                cells.append(frames)
                motion.append(moved)
            else:
                t, c = self.hash_batch(batch)
            times.append(t)
            codes.append(c)
            last = float(batch.times[-1]) + 1.0 / self.sample_fps
            if progress:
                progress(last)
            if max_seconds is not None and last >= max_seconds:
                break
        fp = Fingerprint(
            signal=self.signal.name,
            signal_version=self.signal.version,
            bits=self.signal.bits,
            sample_fps=self.sample_fps,
            duration=round(last, 3),
            times=np.concatenate(times) if times else np.zeros(0),
            codes=np.concatenate(codes) if codes else np.zeros((0, self.signal.code_bytes), np.uint8),
        )
        if overlays and len(fp):
            fp.masked = self._masked_reading(np.concatenate(cells), np.concatenate(motion))
        return fp

    def _hash_with_motion(self, batch: decode.FrameBatch, previous: np.ndarray | None):
        """:meth:`hash_batch` plus the hashed frames, their block motion and the last detail frame."""
        boxes, frames, keep = self._prepare(batch)
        w, h = self.signal.input_size
        detail = preprocess.crop_resize(batch.grey, boxes, (w * DETAIL_FACTOR, h * DETAIL_FACTOR))
        moved = preprocess.block_motion(detail, previous, self.signal.input_size)
        return (batch.times[keep], self.signal.hash_batch(frames[keep]), frames[keep],
                moved[keep].astype(np.float16), detail[-1] if len(detail) else previous)

    def _masked_reading(self, frames: np.ndarray, motion: np.ndarray) -> MaskedCodes | None:
        usable, overlaid = preprocess.still_overlay(motion.astype(np.float32))
        if not overlaid.any():
            return None
        hidden = self.signal.hash_masked(frames[overlaid], usable[overlaid])
        if hidden is None:
            return None
        codes = np.zeros((len(frames), self.signal.code_bytes), np.uint8)
        codes[overlaid] = hidden
        masks = np.packbits(usable.reshape(len(frames), -1) & overlaid[:, None], axis=1)
        return MaskedCodes(codes=codes, masks=masks)


# -- what of a reference can be matched ---------------------------------------------------------
# The matcher (guard.match) reports a run of copied frames only when most of them
# (``min_uniqueness``, 55 %) are *temporally unique*: closer, by ``uniqueness_margin`` bits, to
# the aligned reference frame than to the reference 1.5–12 s earlier or later
# (``uniqueness_shifts``). Where a reference's picture looks like its picture seconds away (a
# still, a test pattern, slides of 2 s or more) no copy can give such frames.
#
# A reference frame counts as distinctive when every shifted frame is more than twice the
# uniqueness margin (8 bits) away. Measured on 20 s synthetic references (320×180, 10 fps,
# 4 sampled fps), with whether their own file and a 150 kb/s copy are found:
#   still image, colour bars with a counter, slides of 5 s or 3 s: 0–3 % distinctive at any
#     radius from 8 to 32 bits; never found;
#   slides of 2 s: 43–51 % at any radius (only mid-slide frames); never found;
#   moving programme (broadcast, sports, pans, concerts, slides of 1 s): 77–100 % at 8 bits;
#     always found. At 16 or 32 bits the darkest concert scenes, which are found, fall to
#     59 % and 9 %: so 8 bits, and a warning below the matcher's own 55 %.


def distinctive_frames(fp: Fingerprint, settings: MatchSettings = MatchSettings()) -> np.ndarray:
    """Which frames of ``fp`` differ by more than twice ``uniqueness_margin`` bits from its
    frames at each of the matcher's ``uniqueness_shifts`` (no frame there counts as different)."""
    times = fp.times
    radius = 2 * settings.uniqueness_margin
    nearest = np.full(len(times), np.iinfo(np.int32).max, dtype=np.int64)
    for shift in settings.uniqueness_shifts:
        target = times + shift
        right = np.clip(np.searchsorted(times, target), 0, max(len(times) - 1, 0))
        for idx in (np.clip(right - 1, 0, None), right):
            near = np.abs(times[idx] - target) <= settings.align_tolerance
            if near.any():
                nearest[near] = np.minimum(nearest[near], hamming(fp.codes[near], fp.codes[idx[near]]))
    return nearest > radius


def matchable_seconds(fp: Fingerprint, min_seconds: float, settings: MatchSettings = MatchSettings()) -> float:
    """Seconds of ``fp`` inside some stretch of ``min_seconds`` whose frames are at least
    ``min_uniqueness`` distinctive: where a copy of just that stretch can be reported."""
    if len(fp) == 0:
        return 0.0
    counts = np.concatenate([[0], np.cumsum(distinctive_frames(fp, settings))])
    period = 1.0 / fp.sample_fps
    starts = np.arange(len(fp))
    ends = np.searchsorted(fp.times, fp.times + min_seconds - period / 2, side="right")
    long_enough = fp.times[ends - 1] + period - fp.times >= min_seconds - 1e-6
    share = (counts[ends] - counts[starts]) / (ends - starts)
    covered, reach = 0.0, -np.inf
    for start in fp.times[long_enough & (share >= settings.min_uniqueness)].tolist():
        covered += max(0.0, start + min_seconds - max(start, reach))  # union of the stretches
        reach = start + min_seconds
    return covered


def reference_warnings(fp: Fingerprint, min_seconds: float, settings: MatchSettings = MatchSettings()) -> list[str]:
    """What the matcher cannot find of a reference, in words; empty for ordinary programme.

    A reference with less picture than its ``min_seconds`` is never reported. One whose frames
    are mostly not distinctive (:func:`distinctive_frames`) is not reported when copied whole;
    at most copies of just its moving stretches are.
    """
    if len(fp) == 0:
        return []
    span = float(fp.times[-1] - fp.times[0]) + 1.0 / fp.sample_fps
    if span < min_seconds:
        shortest = max(0.5, np.floor(span * 2) / 2)
        return [(f"only {span:.1f} s of picture, shorter than its minimum match length of {min_seconds:g} s: "
                 f"no copy of it will be reported (register it with a minimum match length of "
                 f"{shortest:g} s or less to make it matchable)")]
    share = float(distinctive_frames(fp, settings).mean())
    if share >= settings.min_uniqueness:
        return []
    moving = min(matchable_seconds(fp, min_seconds, settings), span)
    rest = (f"; only copies of just its moving stretches (about {moving:.0f} s of {span:.0f} s) lasting "
            f"{min_seconds:g} s or more can be" if moving >= min_seconds else "")
    return [(f"its picture barely changes ({share:.0%} of its frames differ from the picture seconds around "
             f"them, matching needs {settings.min_uniqueness:.0%}): where a copy is in it cannot be told, so a "
             f"copy of it will not be reported{rest}")]
