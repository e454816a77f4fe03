"""Sampled frames → readings: bar removal, resize, batched hashing, uninformative frames dropped.

One path for every query: :class:`QuerySession` hashes a query's frame batches in order,
whether they come from a file (:meth:`Fingerprinter.fingerprint_batches`) or a live stream
(:class:`guard.monitor.StreamMonitor`), keeping what crosses batch boundaries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, TypeVar

import numpy as np

from guard import decode, preprocess, regions, screens
from guard.config import MatchSettings
from guard.models import Fingerprint, MaskedCodes, RegionReadings
from guard.pipeline import pipeline_description
from guard.signals import FrameSignal, get_frame_signal, hamming

TrackT = TypeVar("TrackT", regions.RegionTrack, screens.ScreenTrack)

#: Overlay analysis looks at frames this many times the signal's input size (16×16 → 64×64).
DETAIL_FACTOR = 4
#: Earlier frames whose motion a live overlay analysis keeps (its trailing window, less one).
MOTION_HISTORY = 2 * preprocess.MOTION_WINDOW

#: How a session finds still overlays: not at all; over the whole query once it is complete
#: (files: each frame judged on the frames around it); or as frames come (live: each frame
#: judged on the frames before it).
Overlays = Literal["file", "live"] | None


@dataclass
class Readings:
    """What a :class:`QuerySession` makes of a batch: the time and plain code of each
    informative frame, and the masked readings of frames under a still overlay (``None``
    when none of them is; otherwise one row per frame, all-zero masks for the others)."""

    times: np.ndarray
    codes: np.ndarray
    masked: MaskedCodes | None = None
    #: Readings of the windows inside the frames (rows index :attr:`times`), when looked for.
    regions: RegionReadings | None = None

    def __len__(self) -> int:
        return len(self.times)


class QuerySession:
    """One query's frames → readings, batch after batch, the same for files and live streams.

    Keeps the context that crosses batch boundaries: the last detail frame (block motion compares
    each frame with the one before) and, with ``overlays``, the frames' cell motion: for the
    whole query (``"file"``: masked readings from :meth:`finish`) or for a trailing window
    (``"live"``: masked readings with each batch's readings).
    """

    def __init__(self, signal: FrameSignal, overlays: Overlays = None, windows: bool = False):
        if overlays not in (None, "file", "live"):
            raise ValueError(f"overlays must be None, 'file' or 'live', not {overlays!r}")
        self.signal = signal
        self.overlays = overlays
        #: Windows inside the frames (:mod:`guard.regions`) get readings of their own.
        self.windows = regions.RegionTracker() if windows else None
        #: Screens filmed by a phone (:mod:`guard.screens`) get rectified readings of their own.
        self.screens = screens.ScreenTracker() if windows else None
        self._previous: np.ndarray | None = None
        self._cells: list[np.ndarray] = []
        self._motion: list[np.ndarray] = []
        self._recent: list[np.ndarray] = []  # the last kept greys, for regions.LOOK_BACK
        self._newest_track = [-1, -1]  # the newest window and screen track read so far

    def add(self, batch: decode.FrameBatch) -> Readings:
        """Readings of a batch's informative frames (the batch follows the previous one)."""
        # Bars are smoothed within the batch only, as the stores of the first release were made
        # (preprocess version 1). Smoothing across batches (tried: the last frames of the batch
        # before as context, or the whole file as one batch) changes codes at batch edges, and
        # on the accuracy corpus turned one look-alike concert stretch into a false incident.
        boxes = preprocess.detect_bars(batch.grey)
        frames = preprocess.crop_resize(batch.grey, boxes, self.signal.input_size)
        keep = preprocess.informative(frames)
        readings = Readings(batch.times[keep], self.signal.hash_batch(frames[keep]))
        if self.windows is not None:
            readings.regions = self._window_readings(batch.grey, keep)
        if self.overlays is None:
            return readings
        cells, motion = frames[keep], self._motion_of(batch.grey, boxes)[keep]
        if self.overlays == "file":
            self._cells.append(cells)
            self._motion.append(motion)
            return readings
        history = np.concatenate([*self._motion, motion])
        self._motion = [history[-MOTION_HISTORY:]]
        usable, overlaid = preprocess.trailing_still_overlay(history, len(motion))
        readings.masked = self._masked(cells, usable, overlaid)
        return readings

    def _window_readings(self, grey: np.ndarray, keep: np.ndarray) -> RegionReadings:
        """Readings of the windows (a layout's) and the filmed screens (rectified) in view of
        each kept frame (rows among the kept frames). Window tracks keep their ids, screen
        tracks take negative ones; a screen that is one of the windows is read as the window.
        A track seen for the first time is also read in the kept frames before it (up to
        :data:`~guard.regions.LOOK_BACK`), of this batch and earlier ones (negative rows: -1 is
        the last kept frame of the batch before)."""
        assert self.windows is not None and self.screens is not None
        in_view, filmed = self.windows.add(grey), self.screens.add(grey)
        kept = np.flatnonzero(keep)
        windows: list[tuple[int, regions.RegionTrack]] = []  # (row, track)
        shown: list[tuple[int, screens.ScreenTrack]] = []
        for row, frame in enumerate(kept.tolist()):
            windows += [(row, t) for t in in_view[frame]]
            shown += [(row, t) for t in filmed[frame]
                      if all(regions.overlap(t.box, o.box) < regions.SAME_WINDOW for o in in_view[frame])]
        before = len(self._recent)
        greys = [*self._recent, *grey[kept]]  # greys[before + row]: the kept frame at row
        self._recent = greys[-regions.LOOK_BACK:]
        windows = self._looked_back(windows, before, 0) + windows
        shown = self._looked_back(shown, before, 1) + shown
        if not windows and not shown:
            return RegionReadings.join([], self.signal.code_bytes)
        # All crops of a batch in one call each (windows, then screens).
        images = [preprocess.crop_resize(np.stack([greys[before + row] for row, _ in windows]),
                                         np.asarray([t.box for _, t in windows]), self.signal.input_size)] if windows else []
        if shown:
            images.append(screens.rectify(np.stack([greys[before + row] for row, _ in shown]),
                                          [t.quad for _, t in shown], self.signal.input_size))
        read = [(row, t.id, t.box) for row, t in windows] + [(row, -1 - t.id, t.box) for row, t in shown]
        h, w = grey.shape[1:]
        return RegionReadings(np.asarray([r for r, _, _ in read], np.int64), np.asarray([i for _, i, _ in read], np.int64),
                              np.asarray([(left / w, top / h, right / w, bottom / h)
                                          for _, _, (top, bottom, left, right) in read], np.float32),
                              self.signal.hash_batch(np.concatenate(images)))

    def _looked_back(self, reads: list[tuple[int, TrackT]], before: int, kind: int) -> list[tuple[int, TrackT]]:
        """Reads of the tracks first seen in ``reads`` (of one ``kind``: windows 0, screens 1)
        in the kept frames before their first one: back to :data:`~guard.regions.LOOK_BACK`
        frames, or to the ``before`` frames of earlier batches still held."""
        back: list[tuple[int, TrackT]] = []
        for row, track in reads:  # a track's first read comes first; tracks are numbered in order
            if track.id > self._newest_track[kind]:
                self._newest_track[kind] = track.id
                back += [(earlier, track) for earlier in range(max(-before, row - regions.LOOK_BACK), row)]
        return back

    def finish(self) -> MaskedCodes | None:
        """With ``overlays="file"``: the masked readings of every frame read so far, each judged
        on the frames around it (``None`` when no frame is under a still overlay)."""
        if self.overlays != "file" or not self._cells:
            return None
        cells, motion = np.concatenate(self._cells), np.concatenate(self._motion)
        return self._masked(cells, *preprocess.still_overlay(motion))

    def _motion_of(self, grey: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Block motion of a batch's frames (bars removed) since the frame before each."""
        w, h = self.signal.input_size
        detail = preprocess.crop_resize(grey, boxes, (w * DETAIL_FACTOR, h * DETAIL_FACTOR))
        moved = preprocess.block_motion(detail, self._previous, self.signal.input_size)
        if len(detail):
            self._previous = detail[-1]
        # Kept at half precision (a whole file's motion stays small); live rounds the same way.
        return moved.astype(np.float16).astype(np.float32)

    def _masked(self, cells: np.ndarray, usable: np.ndarray, overlaid: np.ndarray) -> MaskedCodes | None:
        if not overlaid.any():
            return None
        hidden = self.signal.hash_masked(cells[overlaid], usable[overlaid])
        if hidden is None:
            return None
        codes = np.zeros((len(cells), self.signal.code_bytes), np.uint8)
        codes[overlaid] = hidden
        masks = np.packbits(usable.reshape(len(cells), -1) & overlaid[:, None], axis=1)
        return MaskedCodes(codes=codes, masks=masks)


class Fingerprinter:
    """Hashes frame batches with one signal at one sampling rate."""

    def __init__(self, signal: str | FrameSignal, sample_fps: float = 4.0, fast_decode: bool = True):
        self.signal = get_frame_signal(signal) if isinstance(signal, str) else signal
        self.sample_fps = sample_fps
        self.decode_options = decode.DecodeOptions(sample_fps=sample_fps, fast=fast_decode)

    def pipeline(self, signal: FrameSignal | None = None) -> dict[str, Any]:
        """What shapes the codes this fingerprinter makes with ``signal`` (default: its own):
        the signal's description, the decoder options and the preprocessing version."""
        return pipeline_description(
            (signal or self.signal).describe(), sample_fps=self.sample_fps, fast=self.decode_options.fast,
            grey_size=decode.GREY_SIZE, preprocess_version=preprocess.PREPROCESS_VERSION,
        )

    def session(self, overlays: Overlays = None, windows: bool = False) -> QuerySession:
        """A :class:`QuerySession` with this fingerprinter's signal."""
        return QuerySession(self.signal, overlays, windows)

    def hash_batch(self, batch: decode.FrameBatch) -> tuple[np.ndarray, np.ndarray]:
        """Times and codes of one batch's informative frames on its own, bars removed."""
        readings = self.session().add(batch)
        return readings.times, readings.codes

    def fingerprint_file(
        self,
        path: str | os.PathLike[str],
        progress: Callable[[float], None] | None = None,
        av_options: dict[str, str] | None = None,
        overlays: bool = False,
        stills: decode.Stills | None = None,
        audio: decode.AudioTap | None = None,
    ) -> Fingerprint:
        """Fingerprint a whole file; ``progress`` receives media seconds done after each batch.

        With ``overlays``, frames partly hidden by a still overlay also get a masked reading
        (:attr:`Fingerprint.masked`) — what scans want, references do not. ``stills`` collects
        pictures of the file in the same decode (a reference's keyframes), ``audio`` its sound.
        """
        batches = decode.sample_frames(path, self.decode_options, av_options, stills, audio)
        return self.fingerprint_batches(batches, progress, overlays=overlays)

    def fingerprint_batches(
        self,
        batches: Iterable[decode.FrameBatch],
        progress: Callable[[float], None] | None = None,
        max_seconds: float | None = None,
        overlays: bool = False,
    ) -> Fingerprint:
        """Fingerprint a stream of batches, stopping after ``max_seconds`` of media if given."""
        session = self.session("file" if overlays else None, windows=overlays)
        times, codes, windows, last, count = [], [], [], 0.0, 0
        for batch in batches:
            readings = session.add(batch)
            times.append(readings.times)
            codes.append(readings.codes)
            if readings.regions is not None and len(readings.regions):
                readings.regions.rows += count
                windows.append(readings.regions)
            count += len(readings)
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
            pipeline=self.pipeline(),
        )
        if overlays and len(fp):
            fp.masked = session.finish()
            fp.regions = RegionReadings.join(windows, self.signal.code_bytes).in_frame_order()
        return fp


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
