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


def rms(pcm: np.ndarray) -> float:
    """Root mean square level of ``pcm`` (0 for an empty array)."""
    return float(np.sqrt(np.mean(np.asarray(pcm, np.float64) ** 2))) if len(pcm) else 0.0


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """Signal-to-noise ratio in dB of two aligned arrays (their RMS levels)."""
    return 20 * np.log10(rms(signal) / max(rms(noise), 1e-12))


def mix_at_snr(pcm: np.ndarray, other: np.ndarray, snr: float, span: tuple[int, int] | None = None,
               ) -> tuple[np.ndarray, float]:
    """``pcm`` plus ``other`` scaled so that, over the samples ``span`` (default: all), ``pcm``
    stands ``snr`` dB above it (0 dB: equal loudness). Not clipped: see :func:`fit_level`.
    Returns the mix and the gain ``other`` got."""
    a, b = span if span is not None else (0, len(pcm))
    other = np.resize(np.asarray(other, np.float64), len(pcm))
    gain = rms(pcm[a:b]) / max(rms(other[a:b]), 1e-12) * 10 ** (-snr / 20)
    return (pcm + gain * other).astype(np.float32), gain


def fit_level(pcm: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """``pcm`` scaled down as a whole if it peaks above ``peak`` (mixes keep their ratios)."""
    top = float(np.abs(pcm).max()) if len(pcm) else 0.0
    return (pcm * (peak / top) if top > peak else pcm).astype(np.float32)


def fan_recording(pcm: np.ndarray, sample_rate: int, seed: int, snr: float | None = 5.0,
                  span: tuple[int, int] | None = None, band: tuple[float, float] = (150.0, 7000.0),
                  rt60: float = 0.5) -> np.ndarray:
    """A phone filming a concert hall: ``pcm`` in a room (:func:`room_echo`), crowd noise
    around it, through a phone microphone's band (:func:`phone_band`). The crowd is scaled so
    that, in the recording, the sound stands ``snr`` dB above it over ``span`` (the copied
    stretch; default: all); ``snr=None`` leaves the crowd out. The chain is linear and not
    clipped, so the recording minus the same call with ``snr=None`` is the crowd as recorded."""
    heard = phone_band(room_echo(pcm, sample_rate, seed, rt60=rt60), sample_rate, *band)
    if snr is None:
        return heard
    noise = phone_band(crowd(len(pcm), seed + 50, sample_rate), sample_rate, *band)
    return mix_at_snr(heard, noise, snr, span)[0]


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
