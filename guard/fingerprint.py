"""Sampled frames → fingerprints: bar removal, resize, batched hashing, uninformative frames dropped."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import numpy as np

from guard import decode, preprocess
from guard.models import Fingerprint, MaskedCodes
from guard.signals import FrameSignal, get_signal

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
