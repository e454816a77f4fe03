"""Measure the audio landmark signal: recall and localization per distortion, cost, memory.

Synthetic songs (``guard_synth``) are references; each query is 3 s of speech, 12 s of one
reference put through a distortion, then 3 s of crowd noise. A query counts as *found* when
its best segment names the right reference, and as *localized* when, in addition, its query
start and end and its reference start are within 1 s of the truth. Unrelated queries (other
songs of the same style, speech, crowds) count false segments. Prints Markdown tables.

    python scripts/measure_audio.py                # 8 seeds, the shipped parameters
    python scripts/measure_audio.py --seeds 4 --rates 8000 11025
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from typing import Callable

import numpy as np

from guard import decode
from guard.audio_match import find_segments
from guard.index.landmarks import LandmarkIndex
from guard.signals.audio import AudioLandmarks, LandmarkParams
from guard_synth import music
from guard_synth.broadcast import audio_track

REFERENCE_SECONDS, COPY_START, COPY_SECONDS, LEAD_IN = 30.0, 8.0, 12.0, 3.0
SOURCE_RATE = 16000  # songs are made at 16 kHz, distorted there, then brought to the signal's rate


def distortions(workdir: str) -> dict[str, tuple[float, Callable[[np.ndarray, int], np.ndarray]]]:
    """Name → (speed, distortion of 16 kHz PCM)."""
    sr = SOURCE_RATE

    def aac64(pcm: np.ndarray, seed: int) -> np.ndarray:
        path = music.write_aac(os.path.join(workdir, f"q{seed}.m4a"), pcm, sr, 64000)
        return np.concatenate([b.samples for b in decode.sample_audio(path, rate=sr)])

    def fan(pcm: np.ndarray, seed: int) -> np.ndarray:
        heard = music.room_echo(music.phone_band(pcm, sr), sr, seed)
        return music.change_speed(music.add_noise(heard, music.crowd(len(heard), seed + 50, sr), 5), 1.02)

    return {
        "clean": (1.0, lambda pcm, seed: pcm),
        "AAC 64 kb/s mono (PyAV)": (1.0, aac64),
        "volume -20 dB": (1.0, lambda pcm, seed: music.volume(pcm, -20)),
        "phone band 150 Hz-7 kHz": (1.0, lambda pcm, seed: music.phone_band(pcm, sr)),
        "room echo (RT60 0.5 s)": (1.0, lambda pcm, seed: music.room_echo(pcm, sr, seed)),
        "crowd noise 5 dB SNR": (1.0, lambda pcm, seed: music.add_noise(pcm, music.crowd(len(pcm), seed + 50, sr), 5)),
        "pink noise 5 dB SNR": (1.0, lambda pcm, seed: music.add_noise(pcm, music.pink_noise(len(pcm), seed), 5)),
        "speed +5 %": (1.05, lambda pcm, seed: music.change_speed(pcm, 1.05)),
        "speed -5 %": (0.95, lambda pcm, seed: music.change_speed(pcm, 0.95)),
        "speed +2.5 % (off grid)": (1.025, lambda pcm, seed: music.change_speed(pcm, 1.025)),
        "fan: phone+echo+crowd 5 dB+2 %": (1.02, fan),
    }


def to_rate(pcm: np.ndarray, rate: int) -> np.ndarray:
    """16 kHz PCM at ``rate`` (polyphase resampling; decode does this with FFmpeg's resampler)."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, SOURCE_RATE)
    return resample_poly(pcm, rate // g, SOURCE_RATE // g).astype(np.float32)


def params_for(rate: int) -> LandmarkParams:
    """The shipped parameters at another sample rate: about the same window and hop durations
    (sizes rounded to multiples of 32 samples) and bin width in Hz, peaks up to 3.9 kHz
    (8 kHz) or 5 kHz (higher rates)."""
    base = LandmarkParams()
    scale = rate / base.sample_rate
    return dataclasses.replace(base, sample_rate=rate, n_fft=32 * int(round(base.n_fft * scale / 32)),
                               hop=32 * int(round(base.hop * scale / 32)), f_max=min(base.f_max if rate == 8000 else 5000.0,
                                                                         0.49 * rate))


def run(rate: int, seeds: int, references: int, workdir: str) -> dict[str, object]:
    signal = AudioLandmarks(params_for(rate))
    songs = {ref: audio_track(500 + ref, REFERENCE_SECONDS, SOURCE_RATE) for ref in range(1, references + 1)}
    index = LandmarkIndex()
    signal.landmarks(to_rate(songs[1][:SOURCE_RATE], rate), query=True)  # warm up (imports, FFT plans)
    started = time.perf_counter()
    for ref, pcm in songs.items():
        landmarks = signal.landmarks(to_rate(pcm, rate))
        index.add(ref, landmarks.times, landmarks.hashes)
    reference_speed = references * REFERENCE_SECONDS / (time.perf_counter() - started)
    reference_seconds = references * REFERENCE_SECONDS
    rows = []
    query_seconds, query_time = 0.0, 0.0
    for name, (speed, distort) in distortions(workdir).items():
        found = localized = 0
        errors = []
        for seed in range(seeds):
            ref = 1 + seed % references
            clip = songs[ref][int(COPY_START * SOURCE_RATE): int((COPY_START + COPY_SECONDS) * SOURCE_RATE)]
            pcm = np.concatenate([audio_track(700 + seed, LEAD_IN, SOURCE_RATE, "speech"), distort(clip, seed),
                                  audio_track(800 + seed, 3.0, SOURCE_RATE, "crowd")])
            started = time.perf_counter()
            query = signal.landmarks(to_rate(pcm, rate), query=True)
            segments = find_segments(query, index.search(query.hashes), signal.params)
            query_time += time.perf_counter() - started
            query_seconds += len(pcm) / SOURCE_RATE
            best = max(segments, key=lambda s: s.matched_frames, default=None)
            if best is None or best.reference_id != ref:
                continue
            found += 1
            error = max(abs(best.query_start - LEAD_IN), abs(best.query_end - LEAD_IN - COPY_SECONDS / speed),
                        abs(best.reference_start - COPY_START))
            errors.append(error)
            localized += error <= 1.0
        rows.append((name, found / seeds, localized / seeds, float(np.mean(errors)) if errors else float("nan"),
                     max(errors, default=float("nan"))))
    false_segments, negatives = 0, 0
    for seed in range(seeds):
        for style in ("music", "speech", "crowd"):
            pcm = to_rate(audio_track(900 + seed, 25.0, SOURCE_RATE, style), rate)
            query = signal.landmarks(pcm, query=True)
            false_segments += len(find_segments(query, index.search(query.hashes), signal.params))
            negatives += 1
    path = os.path.join(workdir, "table.landmarks")
    index.save(path)
    return {
        "rows": rows, "false": false_segments, "negatives": negatives,
        "landmarks_per_second": len(index) / reference_seconds,
        "reference_speed": reference_speed, "query_speed": query_seconds / query_time,
        "memory_per_hour": index.memory_bytes() / reference_seconds * 3600,
        "file_per_hour": os.path.getsize(path) / reference_seconds * 3600,
    }


def decode_speed(workdir: str, rate: int) -> float:
    """× real time of decoding 60 s of 64 kb/s AAC to mono ``rate`` blocks."""
    path = music.write_aac(os.path.join(workdir, "decode.m4a"), audio_track(1, 60.0, SOURCE_RATE), SOURCE_RATE, 64000)
    started = time.perf_counter()
    total = sum(len(b.samples) for b in decode.sample_audio(path, rate=rate)) / rate
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8, help="queries per distortion (and negatives per style)")
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--rates", type=int, nargs="+", default=[8000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for rate in args.rates:
            result = run(rate, args.seeds, args.references, workdir)
            print(f"\n### {rate} Hz, {args.references} references of {REFERENCE_SECONDS:.0f} s, "
                  f"{args.seeds} queries per distortion\n")
            print("| distortion | found (right reference) | localized ±1 s | mean error (s) | max error (s) |")
            print("|---|---|---|---|---|")
            for name, found, localized, mean_error, max_error in result["rows"]:  # type: ignore[attr-defined]
                print(f"| {name} | {found:.2f} | {localized:.2f} | {mean_error:.2f} | {max_error:.2f} |")
            print("\n| measure | value |\n|---|---|")
            print(f"| false segments on unrelated music, speech, crowds | {result['false']} "
                  f"in {result['negatives']} queries of 25 s |")
            print(f"| reference landmarks per second | {result['landmarks_per_second']:.1f} |")
            print(f"| reference extraction speed | {result['reference_speed']:.0f}× real time |")
            print(f"| query extraction + search + alignment (11 speeds) | {result['query_speed']:.0f}× real time |")
            print(f"| index memory per reference hour | {result['memory_per_hour'] / 2**20:.1f} MiB |")
            print(f"| index file per reference hour | {result['file_per_hour'] / 2**20:.1f} MiB |")
            print(f"| decoding 64 kb/s AAC to mono {rate} Hz | {decode_speed(workdir, rate):.0f}× real time |")


if __name__ == "__main__":
    main()
