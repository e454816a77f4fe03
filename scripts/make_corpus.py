#!/usr/bin/env python
"""Build the rebroadcast accuracy corpus: references, pirated queries per family, negatives.

Everything is a pure function of ``--seed`` and the profile (``full`` or ``quick``), drawn with
:mod:`guard_synth.broadcast`. Each file's name carries a hash of its full specification, so a file is
rendered once and reused by every later run; changing a parameter renders only what changed.
The ground truth goes to ``<folder>/corpus.json``.

    python scripts/make_corpus.py CORPUS_DIR [--quick] [--seed 7] [--jobs 2]

Layout: ``refs/``, ``queries/<family>/``, ``negatives/`` and ``corpus.json``.

A query is ``filler · copied segment · filler``: 10–40 s of one reference (``quick``: 10–20 s)
between unrelated programming, with the family's transformation applied to the whole stream
(as a pirate's pipeline would), except picture-in-picture and speed, which only touch the copy.
Fillers and negatives come from seeds and photos disjoint from the references' (see
:data:`REFERENCE_PHOTOS`, :data:`OTHER_PHOTOS`), so they share the styles but never the content.

Audio (issue 12): the audio families (:data:`AUDIO_FAMILIES`) copy only the sound. The full
profile adds :attr:`Profile.recording_references` references whose sound is a real recording
(:mod:`guard_synth.recordings`: Debian's ``asc-music`` and ``ktuberling-data``); every third
query of the newer audio families copies one of them. Negatives cycle through four kinds of
sound (:data:`NEGATIVE_AUDIO`): their style's synthetic mix, another real track, a talker over
their programme at equal loudness, and a fan-style recording of it. Missing packages fall back
to synthetic sound, recorded in the specs (so the files differ) and logged with the install line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from guard_synth import broadcast as synth
from guard_synth import layouts
from guard_synth import music as audio_fx
from guard_synth import recordings
from guard_synth.encode import write_video

log = logging.getLogger("make_corpus")

#: Bump when the generator changes what a given specification renders: every file is rebuilt.
CORPUS_VERSION = 1

#: Photos the references may show; fillers and negatives use only :data:`OTHER_PHOTOS`.
REFERENCE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera",
                    "moon", "coins")
OTHER_PHOTOS = ("clock", "grass", "gravel", "brick", "cell", "page", "text")
assert not set(REFERENCE_PHOTOS) & set(OTHER_PHOTOS)

#: Reference content styles: synth styles plus "talk" (a studio-like shot with a lower third).
REFERENCE_STYLES = ("broadcast", "sports", "concert", "talk", "photo", "shapes")
#: Which audio a style carries: (synth audio style, gain) pairs mixed together.
AUDIO_MIX = {
    "broadcast": (("music", 0.8), ("speech", 0.4)),
    "sports": (("crowd", 0.7), ("speech", 0.6)),
    "concert": (("music", 0.9), ("crowd", 0.35)),
    "talk": (("speech", 1.0),),
    "photo": (("music", 0.7),),
    "shapes": (("music", 0.6), ("speech", 0.5)),
}

#: Families whose evidence is in the soundtrack only: the picture is not the reference's.
AUDIO_FAMILIES = ("audio_only", "audio_shift", "fan_concert", "audio_speed", "audio_commentary")
#: Audio families that may copy a recording reference (every third query does).
RECORDING_FAMILIES = ("fan_concert", "audio_speed", "audio_commentary")

#: Every transformation family, with the variants its queries cycle through.
FAMILIES: dict[str, list[dict]] = {
    "reencode_300k": [{"bitrate": 300_000}],
    "scale_360p": [{"height": 360}],
    "letterbox_pillarbox": [{"box": "letterbox", "aspect": 4 / 3}, {"box": "pillarbox", "aspect": 21 / 9}],
    "crop": [{"crop": 0.10}, {"crop": 0.20}],
    "greyscale_sepia": [{"tone": "greyscale"}, {"tone": "sepia"}],
    "brightness_contrast_gamma": [
        {"brightness": 0.12, "contrast": 1.0, "gamma": 1.0},
        {"brightness": 0.0, "contrast": 1.35, "gamma": 1.0},
        {"brightness": 0.0, "contrast": 1.0, "gamma": 0.7},
        {"brightness": -0.08, "contrast": 0.8, "gamma": 1.25},
    ],
    "logo": [{"corner": c, "size": 0.12} for c in ("tr", "tl", "br", "bl")],
    "overlay_25pct": [{"area": 0.25, "position": p} for p in ("bl", "br", "tl", "c")],
    "ticker": [{"height": 0.08, "scroll": 0.12}, {"height": 0.1, "scroll": 0.2}],
    "mirror": [{}],
    "picture_in_picture": [{"area": a, "corner": c} for a, c in
                           ((0.6, "br"), (0.3, "tl"), (0.45, "c"), (0.15, "tr"))],
    "fps_change_drops": [{"fps_factor": 2 / 3}, {"drop": 0.15}, {"fps_factor": 0.8, "drop": 0.1},
                         {"fps_factor": 2.0}],
    "speed_5pct": [{"speed": 1.05}, {"speed": 0.95}],
    "speed_10pct": [{"speed": 1.10}, {"speed": 0.90}],
    "rotate_zoom": [{"degrees": d, "zoom": z} for d, z in ((3.0, 1.08), (-4.0, 1.1), (5.0, 1.12), (-3.5, 1.06))],
    "camcorder": [{"camcord": 1}, {"camcord": 2}],
    "audio_only": [{"still": True}],
    "audio_shift": [{"still": True, "audio_speed": 1.03}, {"still": True, "audio_speed": 0.97}],
    # A phone filming the concert: another picture; the reference's sound sped up 2 %, in a
    # room (echo, RT60 0.5 s), crowd at 5 dB SNR, a phone microphone's band, mono AAC 64 kb/s.
    "fan_concert": [{"picture": "other", "audio_speed": 1.02, "echo_rt60": 0.5, "crowd_snr_db": 5.0,
                     "band_hz": [150.0, 7000.0], "audio_bit_rate": 64000}],
    # Tape-style ±5 % (time and pitch together) under another picture, so the sound is the only
    # evidence (with the picture sped too, the video matcher finds it: see speed_5pct).
    "audio_speed": [{"picture": "other", "audio_speed": 1.05}, {"picture": "other", "audio_speed": 0.95}],
    # A streamer talking over the broadcast at equal loudness (0 dB over the copy), a
    # webcam inset over a frozen screen.
    "audio_commentary": [{"picture": "streamer", "commentary_snr_db": 0.0}],
    # Issue 14 (after the others, so no earlier query changes its reference): the copy in part
    # of the picture, the whole stream drawn around it (guard_synth.layouts). A streamer's
    # layout (window of 15/30/60 % of the frame, webcam, chat, alerts); a TV in a room filmed
    # by a phone at 10/18/25°; a stadium's big screen (22/30/38 % of the frame) behind a crowd.
    "streamer_layout": [{"layout": "streamer", "area": a, "position": p} for a, p in
                        ((0.15, "tr"), (0.30, "bl"), (0.60, "center"))],
    "camcorder_tv": [{"layout": "tv", "angle": a} for a in (10.0, 18.0, 25.0)],
    "camcorder_stadium": [{"layout": "stadium", "fill": f, "angle": a} for f, a in
                          ((0.22, 4.0), (0.30, -6.0), (0.38, 8.0))],
}

#: Families whose copy fills only part of the picture, inside a layout (issue 14).
LAYOUT_FAMILIES = ("streamer_layout", "camcorder_tv", "camcorder_stadium")

#: The sound of the real-recording references (:attr:`Profile.recording_references`), cycled:
#: (picture style, layers). A layer is ``[kind, gain]`` or ``[kind, gain, what]``: synthetic
#: ``music``/``crowd``/``speech``, ``recorded_music`` (a track of :func:`recordings.music_tracks`
#: by index; the last track is kept for negatives) or ``recorded_speech`` (a speaker set).
RECORDING_REFERENCES = (
    ("concert", [["recorded_music", 0.9, 0], ["crowd", 0.35]]),
    ("photo", [["recorded_music", 0.9, 1]]),
    ("talk", [["recorded_speech", 1.0, "reference"]]),
)

#: What negatives sound like, cycled over them: their style's synthetic mix (``None``: the
#: spec is unchanged from before issue 12's audio families), the last real track under their
#: style's crowd, another talker over their programme at equal loudness, a fan recording.
NEGATIVE_AUDIO = (None, "recorded_music", "commentary", "fan")


@dataclass(frozen=True)
class Profile:
    """How big a corpus is: counts, durations, sizes and frame rates."""

    name: str
    references: int
    ref_seconds: tuple[float, float]
    ref_sizes: tuple[tuple[int, int], ...]  # cycled over references
    fps: float
    render_width: int | None  # draw content this wide, then upscale (None: draw at full size)
    families: tuple[str, ...]
    queries_per_family: int
    copy_seconds: tuple[float, float]
    filler_seconds: tuple[float, float]
    negative_seconds: float
    negative_file_seconds: float
    negative_size: tuple[int, int]
    negative_fps: float
    sample_rate: int = 16000
    preset: str = "ultrafast"
    #: References whose sound is a real recording (:data:`RECORDING_REFERENCES`), after the others.
    recording_references: int = 0
    recording_ref_size: tuple[int, int] = (640, 360)
    recording_ref_seconds: tuple[float, float] = (60.0, 120.0)
    #: Negatives of streamer layouts around unrelated content (issue 14), after the others.
    streamer_negative_seconds: float = 0.0


FULL = Profile(
    name="full",
    references=20,
    ref_seconds=(60.0, 180.0),
    ref_sizes=((1280, 720),) * 9 + ((1920, 1080),),
    # 15 fps keeps the build near half an hour on 2 cores; guard samples 4 fps, vPDQ 1 fps.
    fps=15.0,
    render_width=640,
    families=tuple(FAMILIES),
    queries_per_family=3,
    copy_seconds=(10.0, 40.0),
    filler_seconds=(4.0, 10.0),
    negative_seconds=3 * 3600.0,
    negative_file_seconds=600.0,
    negative_size=(320, 180),
    negative_fps=8.0,
    recording_references=3,
    streamer_negative_seconds=3600.0,
)

QUICK = Profile(
    name="quick",
    references=4,
    ref_seconds=(40.0, 60.0),
    ref_sizes=((320, 180),),
    fps=15.0,
    render_width=None,
    families=("reencode_300k", "scale_360p", "letterbox_pillarbox", "crop", "greyscale_sepia",
              "brightness_contrast_gamma", "logo", "overlay_25pct"),
    queries_per_family=2,
    copy_seconds=(10.0, 20.0),
    filler_seconds=(4.0, 8.0),
    negative_seconds=600.0,
    negative_file_seconds=300.0,
    negative_size=(160, 90),
    negative_fps=10.0,
)

PROFILES = {"full": FULL, "quick": QUICK}


# --------------------------------------------------------------------------------------------
# Seeds


def derive_seed(seed: int, *parts) -> int:
    """A 62-bit seed from the corpus seed and a role path; distinct roles never collide."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2


def _rng(seed: int, *parts) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *parts))


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


# --------------------------------------------------------------------------------------------
# Content: pure functions of (spec, time)


def _random_access(style: str, seed: int, size: tuple[int, int], photos) -> Callable[[float], np.ndarray]:
    """``t -> frame`` over :func:`guard_synth.broadcast.frames_at`, fed one time at a time."""
    clock = [0.0]

    def times() -> Iterator[float]:
        while True:
            yield clock[0]

    frames = synth.frames_at(style, seed, size, times(), photos=photos)

    def render(t: float) -> np.ndarray:
        clock[0] = t
        return next(frames)

    return render


def content_renderer(style: str, seed: int, size: tuple[int, int], photos, render_width: int | None):
    """A function ``t -> RGB frame`` of one programme, drawn small and upscaled if asked."""
    w, h = size
    draw = size if not render_width or render_width >= w else (_even(render_width), _even(render_width * h / w))
    if style == "talk":
        inner = _random_access("photo", seed, draw, photos)
        lower_third_seed = seed % 100_000

        def render(t: float) -> np.ndarray:
            return synth.overlay(inner(t), 0.1, "bl", alpha=0.9, seed=lower_third_seed)
    else:
        render = _random_access(style, seed, draw, photos)
    if draw == tuple(size):
        return render
    return lambda t: synth.resize(render(t), size)


def programme_audio(style: str, seed: int, start: float, seconds: float, sample_rate: int,
                    layers: list | None = None) -> np.ndarray:
    """The soundtrack of a programme from ``start`` for ``seconds`` (a pure function of time):
    ``layers`` (see :data:`RECORDING_REFERENCES`), by default the style's :data:`AUDIO_MIX`."""
    out = np.zeros(int(round(seconds * sample_rate)), np.float32)
    for k, (kind, gain, *what) in enumerate(layers if layers is not None else AUDIO_MIX[style]):
        track = _layer(kind, what[0] if what else None, derive_seed(seed, "audio", k), start, seconds, sample_rate)
        out[: len(track)] += gain * track[: len(out)]
    return np.clip(out * 0.8, -1.0, 1.0)


def _layer(kind: str, what, seed: int, start: float, seconds: float, sample_rate: int) -> np.ndarray:
    if kind == "recorded_music":
        return recordings.music(recordings.music_tracks()[what], start, seconds, sample_rate)
    if kind == "recorded_speech":
        return recordings.speech(seed, start, seconds, sample_rate, recordings.speech_files(what))
    return synth.audio_track(seed, seconds, sample_rate, kind, start=start)


def _recorded(layers: list) -> tuple[list, dict]:
    """``layers`` with each recording replaced by its synthetic kind when its package is
    missing, and the sources actually used (for the spec, so versions and fallbacks differ)."""
    out, used = [], {}
    for layer in layers:
        kind = layer[0]
        source = {"recorded_music": "asc-music", "recorded_speech": "ktuberling"}.get(kind)
        if source is None:
            out.append(list(layer))
        elif recordings.available(source) and (kind != "recorded_music" or len(recordings.music_tracks()) >= 3):
            out.append(list(layer))
            used[source] = recordings.describe(source)
            if kind == "recorded_speech" and layer[2] == "other" and recordings.available("alsa"):
                used["alsa"] = recordings.describe("alsa")
        else:
            recordings.warn_missing([source])
            out.append([kind.replace("recorded_", ""), layer[1]])
    return out, used


def stretch_audio(pcm: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves with speed, like a naive resample):
    :func:`guard_synth.music.change_speed`."""
    if factor == 1.0 or len(pcm) == 0:
        return pcm
    return audio_fx.change_speed(pcm, factor)


# --------------------------------------------------------------------------------------------
# Specifications


def _file_name(stem: str, spec: dict) -> str:
    digest = hashlib.sha1(json.dumps({"v": CORPUS_VERSION, **spec}, sort_keys=True).encode()).hexdigest()
    return f"{stem}-{digest[:10]}.mp4"


def reference_specs(profile: Profile, seed: int) -> list[dict]:
    """One dict per reference: content, size, duration and its file name."""
    specs = []
    for i in range(profile.references):
        rng = _rng(seed, "reference-plan", i)
        style = REFERENCE_STYLES[i % len(REFERENCE_STYLES)]
        spec = {
            "id": f"ref{i:02d}",
            "style": style,
            "seed": derive_seed(seed, "reference", i),
            "size": list(profile.ref_sizes[i % len(profile.ref_sizes)]),
            "fps": profile.fps,
            "duration": round(float(rng.uniform(*profile.ref_seconds)), 2),
            "render_width": profile.render_width,
            "photos": list(REFERENCE_PHOTOS),
            "sample_rate": profile.sample_rate,
            "preset": profile.preset,
        }
        spec["file"] = f"refs/{_file_name(spec['id'], spec)}"
        specs.append(spec)
    for j in range(profile.recording_references):
        i = profile.references + j
        rng = _rng(seed, "recording-reference-plan", j)
        style, layers = RECORDING_REFERENCES[j % len(RECORDING_REFERENCES)]
        layers, used = _recorded(layers)
        spec = {
            "id": f"ref{i:02d}",
            "style": style,
            "seed": derive_seed(seed, "reference", i),
            "size": list(profile.recording_ref_size),
            "fps": profile.fps,
            "duration": round(float(rng.uniform(*profile.recording_ref_seconds)), 2),
            "render_width": None,
            "photos": list(REFERENCE_PHOTOS),
            "sample_rate": profile.sample_rate,
            "preset": profile.preset,
            "audio": layers,
            "recordings": used,
        }
        spec["file"] = f"refs/{_file_name(spec['id'], spec)}"
        specs.append(spec)
    return specs


def _pick_reference(profile: Profile, refs: list[dict], f_index: int, family: str, k: int) -> dict:
    """The reference a query copies: the first ``profile.references`` by a fixed rule (so adding
    recording references moves no earlier query); every third query of the newer audio
    families copies a recording reference instead."""
    recorded = refs[profile.references:]
    if family in RECORDING_FAMILIES and recorded and k % 3 == 0:
        return recorded[(RECORDING_FAMILIES.index(family) + k // 3) % len(recorded)]
    base = refs[: profile.references]
    if family == "fan_concert":  # a concert: references with music in their sound
        base = [r for r in base if any(kind == "music" for kind, _ in AUDIO_MIX[r["style"]])] or base
    return base[(f_index * 3 + k * 7) % len(base)]


def query_specs(profile: Profile, seed: int, refs: list[dict]) -> list[dict]:
    """One dict per query: family, variant, reference, where the copy sits (the ground truth)."""
    specs = []
    for f_index, family in enumerate(profile.families):
        variants = FAMILIES[family]
        for k in range(profile.queries_per_family):
            rng = _rng(seed, "query", family, k)
            ref = _pick_reference(profile, refs, f_index, family, k)
            variant = dict(variants[k % len(variants)])
            copy = min(float(rng.uniform(*profile.copy_seconds)), ref["duration"] - 2.0)
            ref_start = float(rng.uniform(0.0, ref["duration"] - copy - 0.5))
            before = float(rng.uniform(*profile.filler_seconds))
            after = float(rng.uniform(*profile.filler_seconds))
            speed = variant.get("speed", variant.get("audio_speed", 1.0))
            spec = {
                "id": f"{family}_{k:02d}",
                "family": family,
                "variant": variant,
                "reference": ref["id"],
                "ref_file": ref["file"],
                "ref_style": ref["style"],
                "ref_seed": ref["seed"],
                "ref_size": ref["size"],
                "render_width": profile.render_width,
                "filler_style": synth.STYLES[k % len(synth.STYLES)] if k % 5 else "broadcast",
                "filler_seed": derive_seed(seed, "filler", family, k),
                "fps": round(profile.fps * variant.get("fps_factor", 1.0), 6),
                "sample_rate": profile.sample_rate,
                "preset": profile.preset,
                "audio_only": family in AUDIO_FAMILIES,
                "truth": {
                    "query_start": round(before, 3),
                    "query_end": round(before + copy / speed, 3),
                    "ref_start": round(ref_start, 3),
                    "ref_end": round(ref_start + copy, 3),
                    "rate": speed,
                },
                "duration": round(before + copy / speed + after, 3),
            }
            if "audio" in ref:
                spec["ref_audio"] = ref["audio"]
                spec["recordings"] = dict(ref["recordings"])
            if family in LAYOUT_FAMILIES:
                spec["truth"].update(layout_truth(layout_renderer(spec, tuple(spec["ref_size"]))))
            if "commentary_snr_db" in variant:
                talk, used = _recorded([["recorded_speech", 1.0, "other"]])
                spec["commentary"] = talk[0]
                spec.setdefault("recordings", {}).update(used)
            spec["file"] = f"queries/{family}/{_file_name(spec['id'], spec)}"
            specs.append(spec)
    return specs


def negative_specs(profile: Profile, seed: int) -> list[dict]:
    """Unrelated programmes adding up to ``negative_seconds``, styles cycled."""
    specs = []
    count = max(1, math.ceil(profile.negative_seconds / profile.negative_file_seconds))
    styles = ("broadcast", "sports", "concert", "shapes", "photo", "talk")
    for i in range(count):
        seconds = min(profile.negative_file_seconds, profile.negative_seconds - i * profile.negative_file_seconds)
        spec = {
            "id": f"neg{i:02d}",
            "style": styles[i % len(styles)],
            "seed": derive_seed(seed, "negative", i),
            "size": list(profile.negative_size),
            "fps": profile.negative_fps,
            "duration": round(seconds, 2),
            "photos": list(OTHER_PHOTOS),
            "sample_rate": profile.sample_rate,
            "preset": profile.preset,
        }
        kind = NEGATIVE_AUDIO[i % len(NEGATIVE_AUDIO)] if profile.recording_references else None
        if kind is not None:
            spec["audio"] = _negative_audio(kind, spec["style"])
        spec["file"] = f"negatives/{_file_name(spec['id'], spec)}"
        specs.append(spec)
    return specs + streamer_negative_specs(profile, seed)


def streamer_negative_specs(profile: Profile, seed: int) -> list[dict]:
    """Streamer layouts around unrelated content (no photos: shapes and concerts) adding up to
    ``streamer_negative_seconds``: the layout alone must not look like a copy (issue 14)."""
    specs = []
    total, per_file = profile.streamer_negative_seconds, profile.negative_file_seconds
    for i in range(math.ceil(total / per_file) if total > 0 else 0):
        spec = {
            "id": f"neg_streamer{i:02d}",
            "style": "streamer_layout",
            "layout": {"content_styles": ["shapes", "concert"]},
            "seed": derive_seed(seed, "streamer-negative", i),
            "size": list(profile.negative_size),
            "fps": profile.negative_fps,
            "duration": round(min(per_file, total - i * per_file), 2),
            "photos": list(OTHER_PHOTOS),
            "sample_rate": profile.sample_rate,
            "preset": profile.preset,
            # the game's sound under the streamer's voice
            "audio": {"kind": "streamer", "layers": [["music", 0.6], ["speech", 0.9]]},
        }
        spec["file"] = f"negatives/{_file_name(spec['id'], spec)}"
        specs.append(spec)
    return specs


def _negative_audio(kind: str, style: str) -> dict:
    """A negative's sound beyond its style's mix (:data:`NEGATIVE_AUDIO`)."""
    if kind == "recorded_music":
        # The last track: the references' recordings use the others (see RECORDING_REFERENCES).
        crowd = [list(layer) for layer in AUDIO_MIX[style] if layer[0] == "crowd"]
        last = len(recordings.music_tracks()) - 1 if recordings.available("asc-music") else 0
        layers, used = _recorded([["recorded_music", 0.9, last], *crowd])
        return {"kind": kind, "layers": layers, "recordings": used}
    if kind == "commentary":
        talk, used = _recorded([["recorded_speech", 1.0, "other"]])
        return {"kind": kind, "talk": talk[0], "snr_db": 0.0, "recordings": used}
    return {"kind": "fan", "echo_rt60": 0.5, "crowd_snr_db": 5.0, "band_hz": [150.0, 7000.0]}


# --------------------------------------------------------------------------------------------
# Rendering


def _times(fps: float, seconds: float) -> list[float]:
    return [round(j / fps, 9) for j in range(int(round(seconds * fps)))]


def render_programme(spec: dict, path: Path) -> None:
    """A reference or a negative: one programme, with its soundtrack."""
    size = tuple(spec["size"])
    if "layout" in spec:
        render = layouts.unrelated_layout(spec["seed"], size, styles=spec["layout"]["content_styles"])
    else:
        render = content_renderer(spec["style"], spec["seed"], size, spec["photos"], spec.get("render_width"))
    frames = (render(t) for t in _times(spec["fps"], spec["duration"]))
    write_video(path, frames, spec["fps"], audio=programme_sound(spec), sample_rate=spec["sample_rate"],
                options={"preset": spec["preset"]})


def programme_sound(spec: dict) -> np.ndarray:
    """A reference's or a negative's whole soundtrack (its ``audio``: layers, or a negative's
    kind of :data:`NEGATIVE_AUDIO`)."""
    audio = spec.get("audio")
    sr, seconds = spec["sample_rate"], spec["duration"]
    layers = audio if isinstance(audio, list) else (audio or {}).get("layers")
    pcm = programme_audio(spec["style"], spec["seed"], 0.0, seconds, sr, layers)
    if not isinstance(audio, dict) or audio["kind"] in ("recorded_music", "streamer"):
        return pcm
    if audio["kind"] == "commentary":
        talk = _talk(audio["talk"], derive_seed(spec["seed"], "talk"), seconds, sr)
        return audio_fx.fit_level(audio_fx.mix_at_snr(pcm, talk, audio["snr_db"])[0])
    return audio_fx.fit_level(audio_fx.fan_recording(pcm, sr, derive_seed(spec["seed"], "fan") % 2**31,
                                                     audio["crowd_snr_db"], band=tuple(audio["band_hz"]),
                                                     rt60=audio["echo_rt60"]))


def _talk(layer: list, seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """A talker's voice for ``seconds``: recorded words, or synthetic speech (the fallback)."""
    kind, _gain, *what = layer
    return _layer(kind, what[0] if what else None, seed, 0.0, seconds, sample_rate)


def _frame_transform(spec: dict, out_size: tuple[int, int]) -> Callable[[np.ndarray, float, int], np.ndarray]:
    """The whole-stream picture transformation of a family: ``(frame, t, index) -> frame``."""
    v = spec["variant"]
    family = spec["family"]
    seed = spec["filler_seed"] % 100_000
    if family == "scale_360p":
        return lambda f, t, j: synth.resize(f, out_size)
    if family == "letterbox_pillarbox":
        return lambda f, t, j: synth.letterbox(f, out_size)
    if family == "crop":
        return lambda f, t, j: synth.crop(f, v["crop"])
    if family == "greyscale_sepia":
        return (lambda f, t, j: synth.greyscale(f)) if v["tone"] == "greyscale" else (lambda f, t, j: synth.sepia(f))
    if family == "brightness_contrast_gamma":
        return lambda f, t, j: synth.brightness_contrast(f, v["brightness"], v["contrast"], v["gamma"])
    if family == "logo":
        return lambda f, t, j: synth.logo(f, v["corner"], v["size"], seed=seed)
    if family == "overlay_25pct":
        return lambda f, t, j: synth.overlay(f, v["area"], v["position"], seed=seed)
    if family == "ticker":
        return lambda f, t, j: synth.ticker(f, t, v["height"], seed=seed, speed=v["scroll"])
    if family == "mirror":
        return lambda f, t, j: synth.mirror(f)
    if family == "rotate_zoom":
        return lambda f, t, j: synth.rotate_zoom(f, v["degrees"], v["zoom"])
    if family == "camcorder":
        geo = seed * 10 + v["camcord"]

        def camcord(f, t, j):
            # Drawn at (at most) 640 wide: a camcorder blurs that much anyway, and it is 4× cheaper.
            h, w = f.shape[:2]
            small = synth.resize(f, (min(w, 640), _even(min(w, 640) * h / w)))
            return synth.resize(synth.camcord(small, seed=geo * 1000 + j % 997), (w, h))

        return camcord
    if family in LAYOUT_FAMILIES:
        layout = layout_renderer(spec, out_size)
        return lambda f, t, j: layout(f, t)
    return lambda f, t, j: f


def layout_renderer(spec: dict, out_size: tuple[int, int]):
    """The layout a :data:`LAYOUT_FAMILIES` query is drawn in, ``renderer(frame, t)``: the whole
    stream (fillers too) goes through it, as through a pirate's capture."""
    v = spec["variant"]
    seed = spec["filler_seed"] % 100_000
    if v["layout"] == "streamer":
        return layouts.streamer_layout(v["area"], v["position"], seed, out_size)
    if v["layout"] == "tv":
        return layouts.camcorded_tv(seed, v["angle"], out_size)
    return layouts.stadium_screen(seed, out_size, v["fill"], v["angle"])


def layout_truth(layout) -> dict:
    """Where the copy is in a layout query's picture (output pixels): the streamer's game
    window ``[x0, y0, x1, y1]``, or the filmed screen's corners (tl, tr, br, bl, at rest)."""
    if hasattr(layout, "box"):
        return {"window": [int(c) for c in layout.box]}
    return {"screen": [[float(x), float(y)] for x, y in layout.quad]}


def _query_size(spec: dict) -> tuple[int, int]:
    w, h = spec["ref_size"]
    v = spec["variant"]
    if spec["family"] == "scale_360p":
        target = v["height"] if h >= 720 else h // 2
        return _even(w * target / h), _even(target)
    if spec["family"] == "letterbox_pillarbox":
        return _even(h * v["aspect"]), _even(h)
    return w, h


def query_frames(spec: dict) -> Iterator[np.ndarray]:
    """The query's pictures: filler, the (transformed) copied segment, filler."""
    size = tuple(spec["ref_size"])
    v = spec["variant"]
    truth = spec["truth"]
    fps = spec["fps"]
    ref = content_renderer(spec["ref_style"], spec["ref_seed"], size, list(REFERENCE_PHOTOS), spec["render_width"])
    filler = content_renderer(spec["filler_style"], spec["filler_seed"], size, list(OTHER_PHOTOS),
                              spec["render_width"])
    transform = _frame_transform(spec, _query_size(spec))
    rate = truth["rate"] if "speed" in v else 1.0
    still = None
    if v.get("still"):
        still = content_renderer("photo", derive_seed(spec["filler_seed"], "still"), size, list(OTHER_PHOTOS),
                                 spec["render_width"])(0.0)
    picture = v.get("picture")
    if picture == "streamer":
        # A webcam inset (a photo pan of other photos) over a frozen screen of other content.
        screen = content_renderer("shapes", derive_seed(spec["filler_seed"], "screen"), size, list(OTHER_PHOTOS),
                                  spec["render_width"])(0.0)
        webcam = content_renderer("photo", derive_seed(spec["filler_seed"], "webcam"), size, list(OTHER_PHOTOS),
                                  spec["render_width"])
        for t in _times(fps, spec["duration"]):
            yield synth.picture_in_picture(webcam(t), screen, 0.3, "br")
        return
    drop_rng = _rng(spec["filler_seed"], "drops")
    previous = None
    for j, t in enumerate(_times(fps, spec["duration"])):
        if picture == "other":
            frame = filler(t)  # the filler's programme goes on: the copy is in the sound only
        elif truth["query_start"] <= t < truth["query_end"]:
            if still is not None:
                frame = still
            else:
                frame = ref(truth["ref_start"] + (t - truth["query_start"]) * rate)
                if spec["family"] == "picture_in_picture":
                    frame = synth.picture_in_picture(frame, filler(t), math.sqrt(v["area"]), v["corner"])
        else:
            frame = filler(t)
        frame = transform(frame, t, j)
        if previous is not None and v.get("drop") and drop_rng.random() < v["drop"]:
            frame = previous  # a dropped frame: the player repeats the last one, timing is kept
        previous = frame
        yield frame


def query_audio(spec: dict) -> np.ndarray:
    """Filler sound, the reference's sound for the copy (sped up with it), filler sound; then
    the family's whole-stream sound treatment (a talker over it, a fan's phone in a hall)."""
    sr = spec["sample_rate"]
    truth = spec["truth"]
    v = spec["variant"]
    filler_style = spec["filler_style"] if spec["filler_style"] in AUDIO_MIX else "broadcast"
    before = programme_audio(filler_style, spec["filler_seed"], 0.0, truth["query_start"], sr)
    copy = programme_audio(spec["ref_style"], spec["ref_seed"], truth["ref_start"],
                           truth["ref_end"] - truth["ref_start"], sr, spec.get("ref_audio"))
    copy = stretch_audio(copy, truth["rate"])
    after_start = truth["query_end"]
    after = programme_audio(filler_style, spec["filler_seed"], after_start, spec["duration"] - after_start, sr)
    pcm = np.concatenate([before, copy, after])
    span = (len(before), len(before) + len(copy))
    if "commentary_snr_db" in v:
        talk = _talk(spec["commentary"], derive_seed(spec["filler_seed"], "talk"), len(pcm) / sr, sr)
        # Equal loudness over the copy: the talker's level where it speaks over the reference.
        pcm = audio_fx.fit_level(audio_fx.mix_at_snr(pcm, talk, v["commentary_snr_db"], span)[0])
    if "crowd_snr_db" in v:
        pcm = audio_fx.fit_level(audio_fx.fan_recording(pcm, sr, derive_seed(spec["filler_seed"], "fan") % 2**31,
                                                        v["crowd_snr_db"], span, tuple(v["band_hz"]), v["echo_rt60"]))
    return pcm


def render_query(spec: dict, path: Path) -> None:
    """A pirated query file with its soundtrack."""
    bitrate = spec["variant"].get("bitrate")
    options = {"preset": spec["preset"]}
    if bitrate:
        w, h = spec["ref_size"]
        # 300 kb/s at 720p and above; proportionally less (not under 40 kb/s) for small profiles.
        bitrate = int(bitrate if h >= 720 else max(40_000, bitrate * w * h / (1280 * 720)))
        options = {"preset": "superfast"}
    write_video(path, query_frames(spec), spec["fps"], bit_rate=bitrate, audio=query_audio(spec),
                sample_rate=spec["sample_rate"], options=options,
                audio_bit_rate=spec["variant"].get("audio_bit_rate"))


# --------------------------------------------------------------------------------------------
# Building with a cache


def _build_one(job: tuple[str, dict, str]) -> tuple[str, float, bool]:
    kind, spec, folder = job
    path = Path(folder) / spec["file"]
    if path.is_file() and path.stat().st_size > 0:
        return spec["file"], 0.0, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
    started = time.perf_counter()
    try:
        (render_query if kind == "query" else render_programme)(spec, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return spec["file"], time.perf_counter() - started, True


def plan(profile: Profile, seed: int) -> dict:
    """The full manifest (every spec and its ground truth) without rendering anything."""
    refs = reference_specs(profile, seed)
    return {
        "version": CORPUS_VERSION,
        "seed": seed,
        "profile": asdict(profile),
        "references": refs,
        "queries": query_specs(profile, seed, refs),
        "negatives": negative_specs(profile, seed),
    }


def build(folder: str | os.PathLike, profile: Profile = QUICK, seed: int = 7, jobs: int = 1,
          only: Callable[[str, dict], bool] | None = None) -> dict:
    """Render whatever is missing under ``folder``; write and return the manifest.

    ``only(kind, spec)`` restricts what is rendered (the manifest still lists everything).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = plan(profile, seed)
    work = [("reference", s, str(folder)) for s in manifest["references"]]
    work += [("query", s, str(folder)) for s in manifest["queries"]]
    work += [("negative", s, str(folder)) for s in manifest["negatives"]]
    if only is not None:
        work = [w for w in work if only(w[0], w[1])]
    # Longest first so parallel workers finish together.
    work.sort(key=lambda w: -w[1]["duration"] * w[1].get("size", w[1].get("ref_size"))[0])
    started = time.perf_counter()
    rendered: dict[str, float] = {}
    results = []

    def collect(outcomes) -> None:
        for name, seconds, fresh in outcomes:
            results.append((name, seconds, fresh))
            if fresh:
                rendered[name] = round(seconds, 2)
                log.info("[%d/%d] rendered %s in %.1f s", len(results), len(work), name, seconds)

    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            collect(pool.imap_unordered(_build_one, work))
    else:
        collect(_build_one(w) for w in work)
    manifest["build"] = {
        "rendered_files": len(rendered),
        "cached_files": len(results) - len(rendered),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "render_cpu_seconds": round(sum(rendered.values()), 1),
        "jobs": jobs,
    }
    manifest["build_history"] = _history(folder / "corpus.json", manifest["build"])
    (folder / "corpus.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _history(previous_manifest: Path, build: dict) -> list[dict]:
    """Earlier builds that rendered something, plus this one if it did: what the corpus cost."""
    history = []
    if previous_manifest.is_file():
        old = json.loads(previous_manifest.read_text())
        history = old.get("build_history") or ([old["build"]] if old.get("build", {}).get("rendered_files") else [])
    if build["rendered_files"]:
        history.append(build)
    return history


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where the corpus is cached")
    parser.add_argument("--quick", action="store_true", help="the small profile CI uses")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=1, help="render processes (the machine has 2 cores)")
    parser.add_argument("--queries-per-family", type=int, default=None)
    parser.add_argument("--streamer-negative-seconds", type=float, default=None,
                        help="seconds of streamer layouts around unrelated content among the negatives")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    profile = QUICK if args.quick else FULL
    if args.queries_per_family:
        profile = replace(profile, queries_per_family=args.queries_per_family)
    if args.streamer_negative_seconds is not None:
        profile = replace(profile, streamer_negative_seconds=args.streamer_negative_seconds)
    manifest = build(args.folder, profile, args.seed, args.jobs)
    b = manifest["build"]
    hours = sum(n["duration"] for n in manifest["negatives"]) / 3600
    print(f"{profile.name} corpus in {args.folder}: {len(manifest['references'])} references, "
          f"{len(manifest['queries'])} queries in {len(profile.families)} families, "
          f"{hours:.2f} h of negatives; rendered {b['rendered_files']} files "
          f"({b['cached_files']} cached) in {b['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
