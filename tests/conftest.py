"""Shared fixtures: a store with registered synthetic references, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.config import Settings
from guard.service import Guard
from tests import media

#: Reference seeds registered in the shared store.
REFERENCE_SEEDS = (1, 2, 3)


@pytest.fixture(scope="session")
def reference_files(tmp_path_factory) -> dict[int, Path]:
    """Reference videos by seed."""
    folder = tmp_path_factory.mktemp("references")
    return {seed: media.make_reference(folder / f"ref{seed}.mp4", seed) for seed in REFERENCE_SEEDS}


@pytest.fixture(scope="session")
def loaded_store(tmp_path_factory, reference_files) -> tuple[Path, dict[int, int]]:
    """A store holding every reference; returns its folder and reference ids by seed."""
    home = tmp_path_factory.mktemp("store")
    with Guard(Settings(home=home)) as guard:
        ids = {
            seed: guard.ingest(path, title=f"reference {seed}", owner="league").id
            for seed, path in reference_files.items()
        }
    return home, ids


@pytest.fixture
def guard(loaded_store):
    """A service over the shared store (do not add or remove references through it)."""
    home, _ = loaded_store
    with Guard(Settings(home=home)) as service:
        yield service


@pytest.fixture
def empty_guard(tmp_path):
    """A service over a fresh, empty store."""
    with Guard(Settings(home=tmp_path / "store")) as service:
        yield service
