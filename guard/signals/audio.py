"""Audio landmarks: pairs of spectral peaks hashed for exact lookup (Wang 2003, audfprint).

Mono PCM at :attr:`LandmarkParams.sample_rate` goes through a short-time Fourier transform
(NumPy); spectral peaks are picked where the log magnitude is a local maximum that stands
above its frame's neighbourhood (so volume does not matter), thinned to a fixed density per
half-second chunk; each peak (the *anchor*) is paired with the next few peaks close to it in
time and frequency, and a pair is hashed from its anchor's log frequency, the log-frequency
ratio of the pair and their time difference.

Speed changes (tape-style: time and pitch scaled together) are met on the *query* side: the
query's peaks are re-hashed under a few assumed speeds (:attr:`LandmarkParams.query_speeds`),
mapping their frequencies and time differences back to the reference's; the log-frequency
ratio needs no mapping (it does not change with speed). References are hashed once, at 1.0.
The cost is one hashing pass and one index lookup per assumed speed, on queries only; peaks are
picked once. A query is also picked denser than a reference (:class:`QueryPicking`: more
peaks per chunk, a wider fan-out), so it meets the reference's pairs where noise or a talker
took some; query landmarks are never stored, so this changes no stored track. See
docs/audio.md for the measured choices.

:class:`LandmarkExtractor` is stateful: it takes consecutive blocks of samples (a file read
piece by piece or a live stream) and returns the landmarks that are final, so streamed and
whole-file extraction give the same landmarks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter1d

from guard.signals.base import Modality, Signal

if TYPE_CHECKING:  # the index is imported when it is needed (see AudioLandmarks.index_factory)
    from guard.index.landmarks import LandmarkIndex

#: Bits of each part of a hash: anchor log frequency, log-frequency ratio, time difference.
F1_BITS, DF_BITS, DT_BITS = 8, 6, 6
#: Bit set in :attr:`Landmarks.speeds` on a query landmark hashed with a shifted time
#: difference (:attr:`QueryPicking.dt_tolerance`): it may extend a found copy, never vote for one.
SHIFTED = 0x80
#: Spectral magnitude taken as silence (a full-scale sine peaks near 256): about -130 dB.
_FLOOR = 1e-4


@dataclass(frozen=True)
class LandmarkParams:
    """Everything that shapes the landmarks (recorded with every track; see docs/audio.md).

    Frequencies are in octaves (log2 Hz) for the hash; ``*_step`` are the quantization steps.
    """

    sample_rate: int = 8000
    n_fft: int = 1024  # 128 ms windows, 7.8 Hz bins: tones stand out of noise
    hop: int = 256  # 32 ms between frames
    f_min: float = 150.0  # the phone band's lower edge
    f_max: float = 3900.0
    peak_time_radius: int = 3  # a peak is the largest within ±3 frames …
    peak_freq_radius: int = 10  # … and ±10 bins (±78 Hz)
    contrast: float = 0.5  # natural-log units above the mean of ±16 bins (±125 Hz) in its frame
    chunk_frames: int = 16  # density is enforced per 0.512 s chunk
    peaks_per_chunk: int = 6  # about 12 peaks a second
    fan_out: int = 8
    max_dt: int = 40  # frames (1.28 s)
    max_dlogf: float = 1.0  # octaves between anchor and target
    min_dlogf: float = 1 / 24  # closer pairs (a repeated note, a drum sound) are not paired
    logf_step: float = 1 / 12
    dlogf_step: float = 1 / 12
    dt_step: float = 1.0  # frames
    query_speeds: tuple[float, ...] = (0.95, 0.96, 0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03, 1.04, 1.05)

    @property
    def frame_seconds(self) -> float:
        """Seconds between two spectrogram frames."""
        return self.hop / self.sample_rate


@dataclass(frozen=True)
class QueryPicking:
    """How a *query's* peaks are picked and paired where it differs from a reference's.

    Query landmarks are never stored, so these change no stored track (and are not part of
    :meth:`AudioLandmarks.parameters`). ``peaks_per_chunk`` and ``fan_out`` replace
    :class:`LandmarkParams`'; a denser query keeps every peak a reference keeps (the strongest
    of each chunk) and more, so it meets the reference's pairs where noise took some of them.
    ``dt_tolerance``: each pair is also hashed with its time difference that many frames
    shorter and longer (flagged :data:`SHIFTED`), because a room's echo moves a peak's maximum
    by a frame and a pair whose anchor and target moved apart would miss its reference's hash.
    Those hashes only extend a copy found by exact ones (:mod:`guard.audio_match`): voting with
    them aligned unrelated songs in the same synthetic style. See docs/audio.md.
    """

    peaks_per_chunk: int = 8
    fan_out: int = 12
    dt_tolerance: int = 0


@dataclass
class Landmarks:
    """Hashed peak pairs: anchor time (s, on the clock of the samples fed), hash, and the index
    of the assumed speed in :attr:`LandmarkParams.query_speeds` (or 0 for references), with
    :data:`SHIFTED` set on a query's pairs hashed with a shifted time difference."""

    times: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, np.float64))
    hashes: npt.NDArray[np.uint32] = field(default_factory=lambda: np.zeros(0, np.uint32))
    speeds: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))

    def __len__(self) -> int:
        return len(self.times)

    @staticmethod
    def concat(parts: Sequence[Landmarks]) -> Landmarks:
        """All of ``parts`` in order."""
        if not parts:
            return Landmarks()
        return Landmarks(np.concatenate([p.times for p in parts]), np.concatenate([p.hashes for p in parts]),
                         np.concatenate([p.speeds for p in parts]))

    def take(self, which: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Landmarks:
        """Some of the landmarks (a boolean or index selection)."""
        return Landmarks(self.times[which], self.hashes[which], self.speeds[which])


@dataclass
class _Peaks:
    """Picked peaks: frame number, log2 frequency (octaves)."""

    frames: npt.NDArray[np.int64]
    logf: npt.NDArray[np.float64]


class LandmarkExtractor:
    """Landmarks of consecutive blocks of mono samples at ``params.sample_rate``.

    :meth:`feed` returns what became final with a block (landmarks lag the input by the peak
    neighbourhood and the pairing window, about 1.6 s); :meth:`flush` returns the rest at the
    end of the input. ``speeds`` are the assumed speeds to hash under (``(1.0,)`` for
    references). A block that does not start where the previous one ended (more than half a
    frame off) flushes and starts afresh at its own time.
    """

    def __init__(self, params: LandmarkParams, speeds: Sequence[float] = (1.0,), picking: QueryPicking | None = None):
        self.params = params
        self.speeds = tuple(float(s) for s in speeds)
        self.picking = picking
        self._peaks_per_chunk = picking.peaks_per_chunk if picking else params.peaks_per_chunk
        self._fan_out = picking.fan_out if picking else params.fan_out
        self._dt_shifts = tuple(range(-picking.dt_tolerance, picking.dt_tolerance + 1)) if picking else (0,)
        self._window = np.hanning(params.n_fft + 2)[1:-1].astype(np.float32)
        bins = np.fft.rfftfreq(params.n_fft, 1.0 / params.sample_rate)
        self._band = np.flatnonzero((bins >= params.f_min) & (bins <= params.f_max))
        self._bin_hz = params.sample_rate / params.n_fft
        self._reset(None)

    def _reset(self, origin: float | None) -> None:
        self._origin = origin
        self._samples = np.zeros(0, np.float32)  # not yet in a complete frame
        self._fed = 0  # samples fed since the origin
        self._spectrum = np.zeros((0, len(self._band)), np.float32)  # log magnitudes, band only
        self._spectrum_first = 0  # frame number of self._spectrum[0]
        self._frames = 0  # frames computed
        self._next_chunk = 0  # first frame of the next chunk to pick peaks in
        self._peaks = _Peaks(np.zeros(0, np.int64), np.zeros(0, np.float64))
        self._next_anchor = 0  # frame from which anchors are not yet paired

    def feed(self, samples: npt.ArrayLike, start: float | None = None) -> Landmarks:
        """Add a block starting at ``start`` seconds (default: right after the previous one);
        return the landmarks that became final."""
        block = np.asarray(samples, dtype=np.float32).reshape(-1)
        out: list[Landmarks] = []
        if self._origin is None:
            self._origin = 0.0 if start is None else float(start)
        elif start is not None:
            expected = self._origin + self._fed / self.params.sample_rate
            if abs(start - expected) > 0.5 * self.params.frame_seconds:
                out.append(self.flush())
                self._reset(float(start))
        self._fed += len(block)
        self._samples = np.concatenate([self._samples, block])
        self._add_frames()
        out.append(self._advance(final=False))
        return Landmarks.concat(out)

    def flush(self) -> Landmarks:
        """The landmarks still held back at the end of the input; the extractor then starts afresh."""
        if self._origin is None:
            return Landmarks()
        landmarks = self._advance(final=True)
        self._reset(None)
        return landmarks

    # -- spectrogram

    def _add_frames(self) -> None:
        p = self.params
        count = 0 if len(self._samples) < p.n_fft else 1 + (len(self._samples) - p.n_fft) // p.hop
        if count == 0:
            return
        windows = sliding_window_view(self._samples, p.n_fft)[: (count - 1) * p.hop + 1: p.hop] * self._window
        magnitude = np.abs(np.fft.rfft(windows, axis=1)[:, self._band[0]: self._band[-1] + 1])
        logmag = np.log(np.maximum(magnitude, _FLOOR)).astype(np.float32)  # the floor is silence
        self._spectrum = np.concatenate([self._spectrum, logmag])
        self._frames += count
        self._samples = self._samples[count * p.hop:]

    # -- peaks and pairs

    def _advance(self, final: bool) -> Landmarks:
        p = self.params
        ready = self._frames if final else self._frames - p.peak_time_radius
        first = self._next_chunk
        while self._next_chunk < self._frames and (final or self._next_chunk + p.chunk_frames <= ready):
            self._next_chunk += p.chunk_frames
        if self._next_chunk > first:
            self._pick_chunks(first, min(self._next_chunk, self._frames))
        self._drop_old_spectrum()
        peaks_until = self._frames if final else self._next_chunk  # peaks are final below this frame
        anchors_until = peaks_until if final else peaks_until - p.max_dt
        if anchors_until <= self._next_anchor:
            return Landmarks()
        landmarks = self._pair(self._next_anchor, anchors_until)
        self._next_anchor = anchors_until
        keep = self._peaks.frames >= self._next_anchor
        self._peaks = _Peaks(self._peaks.frames[keep], self._peaks.logf[keep])
        return landmarks

    def _pick_chunks(self, first: int, end: int) -> None:
        """Peaks of frames ``first`` … ``end - 1`` (whole chunks from ``first``, the last one
        possibly short): local maxima standing out of their frame, the strongest of each chunk.
        A frame's peaks depend on its neighbours only, so chunks picked together or one by one
        give the same peaks."""
        p = self.params
        lo, hi = first - p.peak_time_radius, end + p.peak_time_radius
        context = np.full((hi - lo, self._spectrum.shape[1]), -np.inf, np.float32)
        have_lo, have_hi = max(lo, self._spectrum_first), min(hi, self._spectrum_first + len(self._spectrum))
        context[have_lo - lo: have_hi - lo] = self._spectrum[have_lo - self._spectrum_first: have_hi - self._spectrum_first]
        local_max = _window_max(_window_max(context, p.peak_freq_radius, axis=1), p.peak_time_radius, axis=0)
        core = slice(p.peak_time_radius, p.peak_time_radius + end - first)
        spectrum, local_max = context[core], local_max[core]
        background = uniform_filter1d(spectrum, size=33, axis=1, mode="nearest")
        strength = spectrum - background
        is_peak = (spectrum == local_max) & (strength > p.contrast) & (spectrum > math.log(_FLOOR) + 1e-3)
        rows, cols = np.nonzero(is_peak)
        if len(rows) == 0:
            return
        chunk = rows // p.chunk_frames
        ranked = np.lexsort((cols, rows, -strength[rows, cols], chunk))
        starts = np.searchsorted(chunk[ranked], chunk[ranked], side="left")  # each chunk's first place
        best = ranked[np.arange(len(ranked)) - starts < self._peaks_per_chunk]
        rows, cols = rows[best], cols[best]
        logf = np.log2((self._band[cols] + self._offset(spectrum, rows, cols)) * self._bin_hz)
        order = np.lexsort((logf, rows))
        self._peaks = _Peaks(np.concatenate([self._peaks.frames, rows[order].astype(np.int64) + first]),
                             np.concatenate([self._peaks.logf, logf[order]]))

    @staticmethod
    def _offset(spectrum: npt.NDArray[np.float32], rows: npt.NDArray[np.intp],
                cols: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Sub-bin position of each peak by a parabola through it and its neighbours."""
        left = spectrum[rows, np.maximum(cols - 1, 0)].astype(np.float64)
        right = spectrum[rows, np.minimum(cols + 1, spectrum.shape[1] - 1)].astype(np.float64)
        centre = spectrum[rows, cols].astype(np.float64)
        denominator = left - 2 * centre + right
        safe = np.where(np.abs(denominator) > 1e-9, denominator, -1.0)
        return np.where(np.abs(denominator) > 1e-9, np.clip(0.5 * (left - right) / safe, -0.5, 0.5), 0.0)

    def _drop_old_spectrum(self) -> None:
        keep_from = max(self._next_chunk - self.params.peak_time_radius, self._spectrum_first)
        self._spectrum = self._spectrum[keep_from - self._spectrum_first:]
        self._spectrum_first = keep_from

    def _pair(self, first: int, end: int) -> Landmarks:
        """Landmarks of the anchors in frames ``first`` … ``end - 1``."""
        p = self.params
        frames, logf = self._peaks.frames, self._peaks.logf
        anchors = np.flatnonzero((frames >= first) & (frames < end))
        if len(anchors) == 0:
            return Landmarks()
        # Peaks are sorted by frame: the targets of an anchor are among the peaks after it, up
        # to max_dt frames on. One row of candidates per anchor, the first fan_out that fit kept.
        ends = np.searchsorted(frames, frames[anchors] + p.max_dt, side="right")
        width = max(int((ends - anchors).max()) - 1, 1)
        later = anchors[:, None] + 1 + np.arange(width)
        inside = later < ends[:, None]
        later = np.where(inside, later, anchors[:, None])
        dt = frames[later] - frames[anchors][:, None]
        dlogf = np.abs(logf[later] - logf[anchors][:, None])
        fits = inside & (dt >= 1) & (dt <= p.max_dt) & (dlogf <= p.max_dlogf) & (dlogf >= p.min_dlogf)
        fits &= np.cumsum(fits, axis=1) <= self._fan_out
        rows, cols = np.nonzero(fits)
        anchor = anchors[rows].astype(np.intp)
        target = later[rows, cols].astype(np.intp)
        # A frame's time is its window's centre.
        times: npt.NDArray[np.float64] = (self._origin_or_zero() + frames[anchor] * p.frame_seconds
                                          + 0.5 * p.n_fft / p.sample_rate).astype(np.float64)
        dt_frames = (frames[target] - frames[anchor]).astype(np.float64)
        hashed = [_hash_speeds(p, logf[anchor], logf[target], dt_frames, self.speeds, shift) for shift in self._dt_shifts]
        # (speed, pair, shift): a pair's hashes under the time-difference shifts stay together.
        hashes = np.stack([h for h, _ in hashed], axis=-1).reshape(len(self.speeds), -1)
        valid = np.stack([v for _, v in hashed], axis=-1).reshape(len(self.speeds), -1)
        times = np.repeat(times, len(self._dt_shifts))
        flag = np.array([0 if shift == 0 else SHIFTED for shift in self._dt_shifts], np.uint8)
        speed_of = np.broadcast_to(np.arange(len(self.speeds), dtype=np.uint8)[:, None, None] | flag,
                                   (len(self.speeds), len(anchor), len(flag))).reshape(valid.shape)
        # Row by row: every landmark heard at the first speed, then at the second, …
        return Landmarks(np.broadcast_to(times, valid.shape)[valid], hashes[valid], speed_of[valid])

    def _origin_or_zero(self) -> float:
        return 0.0 if self._origin is None else self._origin


def _window_max(values: npt.NDArray[np.float32], radius: int, axis: int) -> npt.NDArray[np.float32]:
    """The maximum of each element's ±``radius`` neighbours along ``axis`` (-inf beyond the
    edges): ``scipy.ndimage.maximum_filter`` along one axis, by doubling windows (a sparse
    table), a few whole-array ``np.maximum`` s instead of a loop over lines (8× faster here)."""
    moved = np.moveaxis(values, axis, 0)
    span, length = 2 * radius + 1, moved.shape[0]
    padded = np.full((length + 2 * radius, *moved.shape[1:]), -np.inf, values.dtype)
    padded[radius: radius + length] = moved
    width, widest = 1, padded  # widest[i]: the maximum of padded[i : i + width]
    while 2 * width <= span:
        widest = np.maximum(widest[:-width], widest[width:])
        width *= 2
    # Two overlapping windows of ``width`` cover the ``span`` from i exactly.
    out = np.maximum(widest[:length], widest[span - width: span - width + length])
    return np.moveaxis(out, 0, axis)


def pair_span(params: LandmarkParams, hashes: npt.NDArray[np.uint32], speed: float = 1.0) -> npt.NDArray[np.float64]:
    """Seconds from anchor to target of landmarks heard at ``speed`` (on the query's clock)."""
    dt = (hashes & np.uint32((1 << DT_BITS) - 1)).astype(np.float64)
    return dt * params.dt_step * params.frame_seconds / speed


def hash_pairs(params: LandmarkParams, anchor_logf: npt.NDArray[np.float64], target_logf: npt.NDArray[np.float64],
               dt_frames: npt.NDArray[np.float64], speed: float = 1.0,
               ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
    """Hashes of peak pairs heard at ``speed`` times the reference's speed, mapped back to the
    reference (frequencies divided by ``speed``, time differences multiplied), and which pairs
    have one (a mapped pair can fall outside the hash's ranges)."""
    hashes, valid = _hash_speeds(params, anchor_logf, target_logf, dt_frames, (speed,))
    return hashes[0][valid[0]], valid[0]


def _hash_speeds(params: LandmarkParams, anchor_logf: npt.NDArray[np.float64], target_logf: npt.NDArray[np.float64],
                 dt_frames: npt.NDArray[np.float64], speeds: Sequence[float], dt_shift: int = 0,
                 ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
    """:func:`hash_pairs` under every speed at once: one row of hashes (all pairs) and of
    validity per speed; ``dt_shift`` steps are added to each mapped time difference."""
    p = params
    shift = np.array([math.log2(speed) for speed in speeds])[:, None]
    scale = np.array(speeds, np.float64)[:, None]
    f1 = np.floor((anchor_logf - shift - math.log2(p.f_min)) / p.logf_step).astype(np.int64)
    df = np.rint((target_logf - anchor_logf) / p.dlogf_step).astype(np.int64) + (1 << (DF_BITS - 1))
    dt = np.rint(dt_frames * scale / p.dt_step).astype(np.int64) + dt_shift
    valid = ((f1 >= 0) & (f1 < (1 << F1_BITS)) & (df >= 0) & (df < (1 << DF_BITS))
             & (dt >= 1) & (dt < (1 << DT_BITS)))
    hashes = ((f1 << (DF_BITS + DT_BITS)) | (df << DT_BITS) | dt).astype(np.uint32)
    return hashes, valid


class AudioLandmarks(Signal):
    """The audio landmark signal: peak pairs of a spectrogram, hashed, matched exactly.

    ``extract`` takes a whole mono signal at ``params.sample_rate`` (for blocks, use
    :meth:`extractor`) and returns reference landmarks' hashes; the index is a
    :class:`guard.index.landmarks.LandmarkIndex`. Two codes compare by equality.
    """

    name = "audio_landmarks"
    version = 1
    modality: ClassVar[Modality] = "audio"
    metric: ClassVar[str] = "exact"

    def __init__(self, params: LandmarkParams | None = None, query_picking: QueryPicking | None = None):
        self.params = params or LandmarkParams()
        self.query_picking = query_picking or QueryPicking()

    def extractor(self, query: bool = False) -> LandmarkExtractor:
        """A new stateful extractor: a reference's (speed 1.0) or a query's (every assumed
        speed, picked and paired by :attr:`query_picking`)."""
        if query:
            return LandmarkExtractor(self.params, self.params.query_speeds, self.query_picking)
        return LandmarkExtractor(self.params, (1.0,))

    def landmarks(self, samples: npt.ArrayLike, start: float = 0.0, query: bool = False) -> Landmarks:
        """Landmarks of a whole signal starting at ``start`` seconds."""
        extractor = self.extractor(query)
        return Landmarks.concat([extractor.feed(samples, start), extractor.flush()])

    def extract(self, batch: Any) -> np.ndarray:
        """Hashes (uint32) of a whole mono signal, as a reference (times: :meth:`landmarks`)."""
        return self.landmarks(batch).hashes

    def index_factory(self, size_hint: int = 0) -> LandmarkIndex:
        """An exact-hash landmark table."""
        from guard.index.landmarks import LandmarkIndex  # lazy: see the module docstring of base

        return LandmarkIndex()

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """0 where the hashes are equal, 1 where they differ."""
        differ: npt.NDArray[np.int32] = (np.asarray(a) != np.asarray(b)).astype(np.int32)
        return differ

    def parameters(self) -> dict[str, Any]:
        """Every :class:`LandmarkParams` field."""
        params = asdict(self.params)
        params["query_speeds"] = list(self.params.query_speeds)
        return params


def audio_landmarks() -> AudioLandmarks:
    """The entry-point factory of the default audio signal."""
    return AudioLandmarks()
