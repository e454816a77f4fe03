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

#: Families whose evidence is in the soundtrack only (guard is video-only for now).
AUDIO_FAMILIES = ("audio_only", "audio_shift")

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
}


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


def programme_audio(style: str, seed: int, start: float, seconds: float, sample_rate: int) -> np.ndarray:
    """The soundtrack of a programme from ``start`` for ``seconds`` (a pure function of time)."""
    out = np.zeros(int(round(seconds * sample_rate)), np.float32)
    for k, (kind, gain) in enumerate(AUDIO_MIX[style]):
        track = synth.audio_track(derive_seed(seed, "audio", k), seconds, sample_rate, kind, start=start)
        out[: len(track)] += gain * track[: len(out)]
    return np.clip(out * 0.8, -1.0, 1.0)


def stretch_audio(pcm: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves with speed, like a naive resample)."""
    if factor == 1.0 or len(pcm) == 0:
        return pcm
    n = max(1, int(round(len(pcm) / factor)))
    return np.interp(np.arange(n) * factor, np.arange(len(pcm)), pcm).astype(np.float32)


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
    return specs


def query_specs(profile: Profile, seed: int, refs: list[dict]) -> list[dict]:
    """One dict per query: family, variant, reference, where the copy sits (the ground truth)."""
    specs = []
    for f_index, family in enumerate(profile.families):
        variants = FAMILIES[family]
        for k in range(profile.queries_per_family):
            rng = _rng(seed, "query", family, k)
            ref = refs[(f_index * 3 + k * 7) % len(refs)]
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
        spec["file"] = f"negatives/{_file_name(spec['id'], spec)}"
        specs.append(spec)
    return specs


# --------------------------------------------------------------------------------------------
# Rendering


def _times(fps: float, seconds: float) -> list[float]:
    return [round(j / fps, 9) for j in range(int(round(seconds * fps)))]


def render_programme(spec: dict, path: Path) -> None:
    """A reference or a negative: one programme, with its soundtrack."""
    size = tuple(spec["size"])
    render = content_renderer(spec["style"], spec["seed"], size, spec["photos"], spec.get("render_width"))
    frames = (render(t) for t in _times(spec["fps"], spec["duration"]))
    audio = programme_audio(spec["style"], spec["seed"], 0.0, spec["duration"], spec["sample_rate"])
    write_video(path, frames, spec["fps"], audio=audio, sample_rate=spec["sample_rate"],
                options={"preset": spec["preset"]})


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
    return lambda f, t, j: f


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
    drop_rng = _rng(spec["filler_seed"], "drops")
    previous = None
    for j, t in enumerate(_times(fps, spec["duration"])):
        if truth["query_start"] <= t < truth["query_end"]:
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
    """Filler sound, the reference's sound for the copy (sped up with it), filler sound."""
    sr = spec["sample_rate"]
    truth = spec["truth"]
    filler_style = spec["filler_style"] if spec["filler_style"] in AUDIO_MIX else "broadcast"
    before = programme_audio(filler_style, spec["filler_seed"], 0.0, truth["query_start"], sr)
    copy = programme_audio(spec["ref_style"], spec["ref_seed"], truth["ref_start"],
                           truth["ref_end"] - truth["ref_start"], sr)
    copy = stretch_audio(copy, truth["rate"])
    after_start = truth["query_end"]
    after = programme_audio(filler_style, spec["filler_seed"], after_start, spec["duration"] - after_start, sr)
    return np.concatenate([before, copy, after])


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
                sample_rate=spec["sample_rate"], options=options)


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    profile = QUICK if args.quick else FULL
    if args.queries_per_family:
        profile = replace(profile, queries_per_family=args.queries_per_family)
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
