"""Sampled frames → fingerprints: bar removal, resize, batched hashing, uninformative frames dropped."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import numpy as np

from guard import decode, preprocess
from guard.models import Fingerprint
from guard.signals import FrameSignal, get_signal


class Fingerprinter:
    """Hashes frame batches with one signal at one sampling rate."""

    def __init__(self, signal: str | FrameSignal, sample_fps: float = 4.0, fast_decode: bool = True):
        self.signal = get_signal(signal) if isinstance(signal, str) else signal
        self.sample_fps = sample_fps
        self.decode_options = decode.DecodeOptions(sample_fps=sample_fps, fast=fast_decode)

    def hash_batch(self, batch: decode.FrameBatch) -> tuple[np.ndarray, np.ndarray]:
        """Times and codes of a batch's informative frames, bars removed."""
        boxes = preprocess.detect_bars(batch.grey)
        frames = preprocess.crop_resize(batch.grey, boxes, self.signal.input_size)
        keep = preprocess.informative(frames)
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
    ) -> Fingerprint:
        """Fingerprint a whole file; ``progress`` receives media seconds done after each batch."""
        times, codes, last = [], [], 0.0
        for batch in decode.sample_frames(path, self.decode_options, av_options):
            t, c = self.hash_batch(batch)
            times.append(t)
            codes.append(c)
            last = float(batch.times[-1]) + 1.0 / self.sample_fps
            if progress:
                progress(last)
        return Fingerprint(
            signal=self.signal.name,
            signal_version=self.signal.version,
            bits=self.signal.bits,
            sample_fps=self.sample_fps,
            duration=round(last, 3),
            times=np.concatenate(times) if times else np.zeros(0),
            codes=np.concatenate(codes) if codes else np.zeros((0, self.signal.code_bytes), np.uint8),
        )
