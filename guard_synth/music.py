"""Synthetic songs with a recurring chorus, and what pirates do to audio, in NumPy and SciPy.

The music itself comes from :func:`guard_synth.broadcast.audio_track` (``"music"`` style, one
seed per song); :func:`song_with_chorus` strings sections of it together so that one section
recurs. The transforms are pure functions of mono float32 PCM: volume, phone band, room
echo, crowd or pink noise at a signal-to-noise ratio, and a tape-style speed change (time
and pitch together). AAC re-encoding goes through :func:`guard_synth.encode.write_audio_only`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from guard_synth.broadcast import audio_track


def song_with_chorus(seed: int, verse_seconds: float, chorus_seconds: float, sample_rate: int = 8000,
                     ) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """verse 1 · chorus · verse 2 · chorus: the chorus samples recur exactly. Returns the PCM
    and each section's (name, start second)."""
    verse1 = audio_track(seed, verse_seconds, sample_rate)
    chorus = audio_track(seed + 1000, chorus_seconds, sample_rate)
    verse2 = audio_track(seed + 2000, verse_seconds, sample_rate)
    sections = [("verse1", verse1), ("chorus", chorus), ("verse2", verse2), ("chorus", chorus)]
    starts, at = [], 0.0
    for name, pcm in sections:
        starts.append((name, at))
        at += len(pcm) / sample_rate
    return np.concatenate([pcm for _, pcm in sections]).astype(np.float32), starts


def volume(pcm: np.ndarray, gain_db: float) -> np.ndarray:
    """``pcm`` louder or quieter by ``gain_db`` (clipped to [-1, 1])."""
    return np.clip(pcm * 10 ** (gain_db / 20), -1, 1).astype(np.float32)


def phone_band(pcm: np.ndarray, sample_rate: int, low: float = 150.0, high: float = 7000.0) -> np.ndarray:
    """A phone microphone's band: 4th-order Butterworth band-pass ``low``–``high`` Hz."""
    from scipy.signal import butter, sosfilt

    high = min(high, 0.45 * sample_rate)
    sos = butter(4, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    return sosfilt(sos, pcm).astype(np.float32)


def room_echo(pcm: np.ndarray, sample_rate: int, seed: int = 0, rt60: float = 0.5, wet: float = 0.5) -> np.ndarray:
    """A room: ``pcm`` convolved with exponentially decaying noise (reverberation time
    ``rt60`` s) plus a discrete echo at 80 ms, mixed ``wet`` with the dry sound."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    response = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    response[int(0.08 * sample_rate)] += 3.0
    response /= np.sqrt(np.sum(response ** 2))
    reverb = fftconvolve(pcm, response)[: len(pcm)]
    return ((1 - wet) * pcm + wet * reverb).astype(np.float32)


def pink_noise(length: int, seed: int = 0) -> np.ndarray:
    """Pink (1/f power) noise of unit RMS."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, length)
    return (noise / np.sqrt(np.mean(noise ** 2))).astype(np.float32)


def add_noise(pcm: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``pcm`` plus ``noise`` scaled to ``snr_db`` below it (RMS over the whole signal)."""
    noise = np.resize(noise, len(pcm)).astype(np.float64)
    signal_rms = np.sqrt(np.mean(pcm.astype(np.float64) ** 2))
    noise_rms = np.sqrt(np.mean(noise ** 2)) or 1.0
    mixed = pcm + noise * (signal_rms / noise_rms) * 10 ** (-snr_db / 20)
    peak = np.abs(mixed).max()
    return (mixed / peak * 0.9 if peak > 0.99 else mixed).astype(np.float32)


def crowd(length: int, seed: int, sample_rate: int) -> np.ndarray:
    """Crowd noise (``audio_track``'s ``"crowd"`` style) of ``length`` samples."""
    return audio_track(seed, length / sample_rate, sample_rate, "crowd")[:length]


def change_speed(pcm: np.ndarray, speed: float) -> np.ndarray:
    """Played ``speed`` times faster, like a tape or a resampler: time shrinks and pitch rises
    by the same factor (1.05: 5 % faster and higher)."""
    length = int(round(len(pcm) / speed))
    positions = np.arange(length) * speed
    return np.interp(positions, np.arange(len(pcm)), pcm).astype(np.float32)


def write_aac(path: str | os.PathLike, pcm: np.ndarray, sample_rate: int = 16000, bit_rate: int = 64000,
              container_options: dict | None = None) -> Path:
    """Write mono ``pcm`` as AAC at ``bit_rate`` bits per second (an ``.m4a``, ``.mp4`` or ``.ts``);
    ``container_options`` go to the muxer (e.g. ``{"output_ts_offset": "600"}``)."""
    import av

    path = Path(path)
    samples = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    with av.open(str(path), mode="w", container_options=container_options or {}) as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        stream.bit_rate = bit_rate
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[start: start + 1024].reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
