"""Processes sharing a store write its index files through temporary files of their own (issue 16):
two writers at once never take each other's half-written file or lose their rename."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from guard.config import Settings
from guard.index import FaissBinaryIndex
from guard.service import Guard

BITS = 256


def _run_together(scripts: list[str], timeout: float = 120) -> None:
    """Start every script in its own interpreter at once; each must exit 0 and print ok."""
    processes = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(s)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for s in scripts]
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            assert process.returncode == 0 and out.strip() == "ok", err[-2000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def test_two_processes_saving_one_index_file_do_not_collide(tmp_path):
    path = tmp_path / "index.faiss"
    writer = """
        import numpy as np
        from pathlib import Path
        from guard.index import FaissBinaryIndex
        index = FaissBinaryIndex({bits})
        index.add(np.arange({n}, dtype=np.int64), np.random.default_rng({n}).integers(0, 256, ({n}, {bits} // 8), dtype=np.uint8))
        for _ in range(200):
            index.save(Path({path!r}))
        print("ok")
    """
    _run_together([writer.format(bits=BITS, n=n, path=str(path)) for n in (3000, 5000)])
    assert len(FaissBinaryIndex.load(path, BITS)) in (3000, 5000)
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"], "no temporary file is left behind"


def test_two_processes_registering_into_one_store_keep_its_index_whole(tmp_path):
    home = tmp_path / "store"
    Guard(Settings(home=home)).close()  # the catalog exists before both writers open it
    writer = """
        import numpy as np
        from pathlib import Path
        from guard.config import Settings
        from guard.models import Fingerprint
        from guard.service import Guard
        rng = np.random.default_rng({seed})
        with Guard(Settings(home=Path({home!r}))) as guard:
            signal = guard.fingerprinter.signal
            for i in range(12):
                fp = Fingerprint(signal=signal.name, signal_version=signal.version, bits=signal.bits,
                                 sample_fps=4.0, duration=10.0, times=np.arange(40) / 4.0,
                                 codes=rng.integers(0, 256, (40, signal.bits // 8), dtype=np.uint8))
                guard.register(fp, title=f"w{seed}-{{i}}", owner="o", source="test")
        print("ok")
    """
    _run_together([writer.format(seed=seed, home=str(home)) for seed in (1, 2)])
    with Guard(Settings(home=home)) as guard:
        assert len(guard.references()) == 24
        assert len(guard.index.index) == 24 * 40
    assert not [p.name for p in home.iterdir() if p.name.endswith(".tmp")], "no temporary file is left behind"
