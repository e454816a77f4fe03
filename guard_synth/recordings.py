"""Real music and speech recordings shipped by Debian packages under free licences.

The accuracy corpus mixes these with the synthetic sound of :mod:`guard_synth.broadcast`, so that
the audio families are not only sine pads and formant buzz. Nothing is downloaded at run time:
each source is a registry package installed with ``apt-get install``; when it is absent,
:func:`available` says so and the caller falls back to synthetic sound (and logs how to install).

=================  ==================  ==========  =============================================
source             Debian package      licence     content
=================  ==================  ==========  =============================================
``asc-music``      ``asc-music``       GPL-2+      3 instrumental tracks (2002, Michael
                                                   Kievernagel), MP3, 22.05 kHz stereo, 5–7 min
``ktuberling``     ``ktuberling-data`` GPL-2+      spoken words by several speakers in ~20
                                                   languages (KDE's KTuberling), Ogg Vorbis and WAV
``alsa``           ``alsa-utils``      GPL-2       a voice naming speaker positions (9 WAV
                                                   clips of 1.4 s; ``Noise.wav`` left out)
=================  ==================  ==========  =============================================

Decoding goes through PyAV (imported lazily, so :mod:`guard_synth.broadcast` stays PyAV-free).
Every function is a pure function of its arguments and of the installed package's files.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import subprocess
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One package's recordings: where its files are and what they are."""

    name: str
    package: str
    licence: str
    kind: str  # "music" or "speech"
    pattern: str  # glob of its files
    exclude: tuple[str, ...] = ()

    def files(self, subsets: tuple[str, ...] | None = None) -> list[str]:
        """The source's files, sorted; ``subsets`` keeps files under those folders (languages)."""
        found = sorted(p for p in glob.glob(self.pattern)
                       if os.path.basename(p) not in self.exclude and os.path.getsize(p) > 0)
        if subsets is not None:
            found = [p for p in found if os.path.basename(os.path.dirname(p)) in subsets]
        return found


SOURCES = {
    "asc-music": Source("asc-music", "asc-music", "GPL-2+", "music", "/usr/share/games/asc/music/*.mp3"),
    "ktuberling": Source("ktuberling", "ktuberling-data", "GPL-2+", "speech", "/usr/share/ktuberling/sounds/*/*.[ow][ga][gv]"),
    "alsa": Source("alsa", "alsa-utils", "GPL-2", "speech", "/usr/share/sounds/alsa/*.wav", ("Noise.wav",)),
}

#: The install line printed when a source is missing.
INSTALL_HINT = "apt-get update && apt-get install -y asc-music ktuberling-data alsa-utils"


def available(name: str) -> bool:
    """Whether source ``name``'s files are on this machine."""
    return bool(SOURCES[name].files())


@functools.lru_cache(maxsize=None)
def package_version(package: str) -> str | None:
    """The installed Debian version of ``package`` (None without dpkg or the package)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def describe(name: str) -> dict | None:
    """What a spec records about a source (so a new package version renders new files), or None
    when it is absent."""
    source = SOURCES[name]
    if not available(name):
        return None
    return {"source": name, "package": source.package, "version": package_version(source.package) or "unknown",
            "licence": source.licence}


@functools.lru_cache(maxsize=16)
def decode(path: str, sample_rate: int) -> np.ndarray:
    """A file's sound as mono float32 at ``sample_rate`` (FFmpeg's resampler through PyAV)."""
    import av

    chunks = []
    with av.open(path, metadata_errors="ignore") as container:  # some tags are not UTF-8
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    pcm = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    pcm.setflags(write=False)
    return pcm


def _normalise(pcm: np.ndarray, rms: float) -> np.ndarray:
    level = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0
    return pcm * (rms / level) if level > 0 else pcm


def music(track: str, start: float, seconds: float, sample_rate: int, rms: float = 0.2) -> np.ndarray:
    """``seconds`` of one ``asc-music`` track (file name) from ``start``, looped past its end,
    at ``rms`` (the whole track's level is scaled, so a track's excerpts keep their dynamics)."""
    path = os.path.join(os.path.dirname(SOURCES["asc-music"].pattern), track)
    whole = decode(path, sample_rate)
    gain = rms / max(float(np.sqrt(np.mean(whole.astype(np.float64) ** 2))), 1e-9)
    first = int(round(start * sample_rate))
    idx = (first + np.arange(int(round(seconds * sample_rate)))) % len(whole)
    return np.clip(whole[idx] * gain, -1, 1).astype(np.float32)


def music_tracks() -> list[str]:
    """The ``asc-music`` track file names, sorted."""
    return [os.path.basename(p) for p in SOURCES["asc-music"].files()]


def speech(seed: int, start: float, seconds: float, sample_rate: int, files: list[str],
           rms: float = 0.15) -> np.ndarray:
    """Talk made of recorded words: a seeded sequence of ``files`` with 0.08–0.5 s pauses (a
    longer breath every few words), each word at ``rms``. A pure function of (seed, time): the
    timeline is laid from 0, and ``start``/``seconds`` cut it."""
    if not files:
        raise ValueError("no speech files")
    rng = np.random.default_rng(seed)
    first = int(round(start * sample_rate))
    total = first + int(round(seconds * sample_rate))
    out = np.zeros(total, np.float32)
    at = int(rng.uniform(0.0, 0.3) * sample_rate)
    count = 0
    while at < total:
        word = _normalise(decode(files[int(rng.integers(len(files)))], sample_rate), rms)
        end = min(total, at + len(word))
        out[at:end] += word[: end - at]
        count += 1
        pause = rng.uniform(0.35, 0.8) if count % 5 == 0 else rng.uniform(0.08, 0.3)
        at = end + int(pause * sample_rate)
    return np.clip(out[first:], -1, 1)


#: Speech languages of references (their talk) and of everything else (streamers, negatives):
#: disjoint recordings, so a streamer never says a reference's words.
REFERENCE_LANGUAGES = ("en", "fr")
OTHER_LANGUAGES = ("da", "de", "ru", "sv", "uk")


def speech_files(role: str) -> list[str]:
    """Recorded words for ``role`` ``"reference"`` (KTuberling en, fr) or ``"other"``
    (KTuberling da, de, ru, sv, uk and the ALSA voice); empty when the packages are absent."""
    if role == "reference":
        return SOURCES["ktuberling"].files(REFERENCE_LANGUAGES)
    return SOURCES["ktuberling"].files(OTHER_LANGUAGES) + SOURCES["alsa"].files()


def warn_missing(names: list[str]) -> None:
    """Log once which sources are missing and how to install them."""
    missing = [n for n in names if not available(n)]
    if missing:
        log.warning("real recordings missing (%s): synthetic sound is used instead; install with: %s",
                    ", ".join(SOURCES[n].package for n in missing), INSTALL_HINT)
