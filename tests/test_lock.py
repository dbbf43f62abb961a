"""The install is the lock: the environment holds exactly the packages requirements/test.txt
pins, at their pinned versions; the service's lock is part of the tests' lock; and the locks
meet what pyproject.toml asks for, so a dependency added without `make lock` is caught here."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
TEST_LOCK = ROOT / "requirements" / "test.txt"
PROJECT = canonicalize_name("docuchat")  # installed from the work tree, not from the lock

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def _pins(lock: Path) -> dict[NormalizedName, Version]:
    return {canonicalize_name(name): Version(v) for name, v in _PIN.findall(lock.read_text())}


def _installed() -> dict[NormalizedName, Version]:
    return {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in importlib.metadata.distributions()
    }


@pytest.mark.locked
def test_the_environment_is_exactly_the_test_lock() -> None:
    installed, locked = _installed(), _pins(TEST_LOCK)
    installed.pop(PROJECT, None)
    missing = sorted(name for name in locked if name not in installed)
    unlocked = sorted(name for name in installed if name not in locked)
    moved = {
        name: f"{installed[name]}, locked {version}"
        for name, version in locked.items()
        if installed.get(name, version) != version
    }
    # (missing, not in the lock, at another version than the lock's): `make test` makes all empty
    assert (missing, unlocked, moved) == ([], [], {}), f"the environment is not {TEST_LOCK.name}"


def test_the_service_runs_the_versions_the_tests_run() -> None:
    runtime, test = _pins(RUNTIME_LOCK), _pins(TEST_LOCK)
    assert runtime, "the runtime lock pins nothing"
    assert {name: test.get(name) for name in runtime} == runtime


def _asked_for() -> list[Requirement]:
    """What pyproject.toml asks for on this platform: the service, its test extra, its build."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    lines = [
        *project["dependencies"],
        *project["optional-dependencies"]["test"],
        *pyproject["build-system"]["requires"],
    ]
    requirements = [Requirement(line) for line in lines]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": "test"})]


def test_the_lock_meets_what_pyproject_asks_for() -> None:
    locked = _pins(TEST_LOCK)
    unmet = [
        str(requirement)
        for requirement in _asked_for()
        if (version := locked.get(canonicalize_name(requirement.name))) is None
        or not requirement.specifier.contains(version, prereleases=True)
    ]
    assert unmet == [], "pyproject.toml asks for what the lock does not hold: run `make lock`"
