"""The README's install commands, CI's entry point and the lock files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _locked(lock: Path) -> dict[str, str]:
    """Package name → pinned version of a lock file written by scripts/lock.sh."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\;]+)", lock.read_text(), flags=re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def _hashed_blocks(lock: Path) -> list[str]:
    return re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.read_text().split("\n", 2)[2])


def _ranges(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = [Requirement(spec) for spec in project["dependencies"] + (extras[extra] if extra else [])]
    # an extra may name another of guard's own extras (test needs demo): take its packages instead
    own = [r for r in requirements if r.name == project["name"]]
    others = [r for r in requirements if r.name != project["name"]]
    return others + [Requirement(spec) for r in own for name in r.extras for spec in extras[name]]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci_lines if "pytest" in line)
    assert "python -m venv --clear" in command and "--require-hashes -r requirements/test.lock" in command
    assert f"```sh\n{command}\n```" in (ROOT / "README.md").read_text()


def test_readme_first_command_installs_the_runtime_lock_and_runs_the_demo() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install --require-hashes -r requirements/guard.lock && pip install --no-deps -e . && guard demo" in readme


@pytest.mark.parametrize(("lock", "extra"), [("guard.lock", "demo"), ("test.lock", "test")])
def test_lock_pins_every_dependency_inside_its_range(lock: str, extra: str | None) -> None:
    pins = _locked(ROOT / "requirements" / lock)
    for requirement in _ranges(extra):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is missing from {lock}: run bash scripts/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]} outside {requirement.specifier}: run bash scripts/lock.sh"
        )


def test_runtime_lock_is_the_test_lock_without_test_tools() -> None:
    runtime, test = _locked(ROOT / "requirements" / "guard.lock"), _locked(ROOT / "requirements" / "test.lock")
    assert runtime.items() <= test.items()


@pytest.mark.parametrize("lock", ["guard.lock", "test.lock"])
def test_every_pin_carries_a_hash(lock: str) -> None:
    for block in _hashed_blocks(ROOT / "requirements" / lock):
        assert "--hash=sha256:" in block, block.splitlines()[0]
