"""Signals come from the ``guard.signals`` entry-point group: plugins register without core edits."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import numpy as np
import pytest

from guard_synth import broadcast as synth
from guard.errors import FormatError
from guard.fingerprint import Fingerprinter
from guard.index.base import BinaryIndex
from guard.signals import (BUILTIN_SIGNALS, ENTRY_POINT_GROUP, FrameSignal, Signal, available_signals,
                           clear_signal_cache, get_signal, load_factories)

TOY_MODULE = '''
"""A toy plugin: the mean brightness of a frame as a 64-bit thermometer code."""

import numpy as np

from guard.signals.base import FrameSignal


class Brightness(FrameSignal):
    name = "toy64"
    version = 1
    bits = 64
    input_size = (8, 8)

    def hash_bits(self, frames):
        levels = np.arange(self.bits) * (256 / self.bits)
        return frames.reshape(len(frames), -1).mean(axis=1, keepdims=True) > levels


def toy64():
    return Brightness()
'''


def _install(root: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """A distribution as an installer leaves it: modules plus ``<dist>-0.1.dist-info``."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")
    for name, source in modules.items():
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(source)


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """``tmp_path`` on ``sys.path`` with the toy plugin installed; the registry re-read around the test."""
    _install(tmp_path, "toy_signal", "toy64 = toy_signal:toy64", {"toy_signal": TOY_MODULE})
    monkeypatch.syspath_prepend(str(tmp_path))
    clear_signal_cache()
    yield tmp_path
    sys.modules.pop("toy_signal", None)
    clear_signal_cache()


def test_builtins_are_registered_through_guards_metadata():
    """pyproject.toml declares exactly the fallback table (reinstall guard after editing it)."""
    declared = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)
                if ep.dist is not None and ep.dist.name == "guard"}
    assert declared == BUILTIN_SIGNALS
    assert set(BUILTIN_SIGNALS) <= set(available_signals())
    signal = get_signal()
    assert (signal.name, signal.modality, signal.metric) == ("mhash16", "video", "hamming")


def test_frame_signals_bring_a_binary_index_and_hamming_distance():
    signal = get_signal("dhash8")
    index = signal.index_factory()
    assert isinstance(index, BinaryIndex) and index.bits == 64 and len(index) == 0
    a = np.array([[0b1111_0000] + [0] * 7], np.uint8)
    b = np.zeros((1, 8), np.uint8)
    assert signal.distance(a, b).tolist() == [4]
    assert signal.within(a, b, 4).tolist() == [True] and signal.within(a, b, 3).tolist() == [False]


def test_a_plugin_registers_without_core_edits(plugins):
    signal = get_signal("toy64")
    assert isinstance(signal, FrameSignal) and type(signal).__module__ == "toy_signal"
    assert "toy64" in available_signals()
    assert set(BUILTIN_SIGNALS) <= set(available_signals())
    assert signal.describe()["input_size"] == [8, 8]


def test_the_fingerprinter_hashes_video_with_a_plugin_signal(plugins):
    video = synth.make_video(plugins / "clip.mp4", synth.broadcast(3, (320, 180), 12, 3.0), 12)
    fp = Fingerprinter("toy64", sample_fps=4).fingerprint_file(video)
    assert (fp.signal, fp.signal_version, fp.bits) == ("toy64", 1, 64)
    assert len(fp.times) >= 8 and fp.codes.shape == (len(fp.times), 8)
    bits = np.unpackbits(fp.codes, axis=1)
    # thermometer codes: a run of ones, then zeros, as long as the frame is bright
    assert np.all(np.diff(bits.astype(np.int8), axis=1) <= 0)
    assert len(np.unique(bits.sum(axis=1))) > 1


def test_a_broken_plugin_is_skipped_with_a_warning(plugins, caplog):
    _install(plugins, "broken_signal", "broken = no_such_module_for_guard:factory", {})
    clear_signal_cache()
    with caplog.at_level(logging.WARNING, logger="guard.signals"):
        names = available_signals()
    assert "broken" not in names and "toy64" in names and "mhash16" in names
    assert any("broken" in r.getMessage() and "no_such_module_for_guard" in r.getMessage() for r in caplog.records)
    with pytest.raises(FormatError, match="unknown signal 'broken'"):
        get_signal("broken")


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(FormatError, match=r"unknown signal 'nope' \(known: .*mhash16.*phash8"):
        get_signal("nope")


def test_builtins_remain_when_guards_metadata_is_missing():
    """A plugin installed beside a guard without metadata (a source tree) keeps the built-ins."""
    plugin = EntryPoint("extra", "guard.signals.dhash:dhash8", ENTRY_POINT_GROUP)
    factories = load_factories([plugin])
    assert set(factories) == set(BUILTIN_SIGNALS) | {"extra"}
    assert set(load_factories([])) == set(BUILTIN_SIGNALS)


def test_a_factory_that_makes_no_signal_is_refused(plugins):
    _install(plugins, "odd_signal", "odd = odd_signal:make", {"odd_signal": "def make():\n    return 42\n"})
    clear_signal_cache()
    try:
        with pytest.raises(FormatError, match="not a Signal"):
            get_signal("odd")
    finally:
        sys.modules.pop("odd_signal", None)


def test_signals_import_nothing_of_guard_but_base_and_errors():
    code = textwrap.dedent("""
        import json, sys
        import numpy as np
        from guard.signals import FrameSignal, available_signals, get_signal
        for name in available_signals():
            signal = get_signal(name)
            if isinstance(signal, FrameSignal):
                signal.hash_batch(np.zeros((1, *signal.input_size[::-1]), np.uint8))
            else:
                signal.extract(np.zeros(8000, np.float32))
        print(json.dumps([m for m in sys.modules if m.split(".")[0] == "guard"]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert {m for m in loaded if not m.startswith("guard.signals")} == {"guard", "guard.errors"}


def test_signal_is_the_small_abstract_base():
    assert issubclass(FrameSignal, Signal)
    with pytest.raises(TypeError):
        Signal()
