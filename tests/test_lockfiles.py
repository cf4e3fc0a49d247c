"""Installs come from hash-pinned lock files (scripts/lock): requirements.lock for the image,
requirements-dev.lock for the dev and test environment; both agree with pyproject.toml and with
each other, and this environment is what the dev lock says."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(
    r"^([A-Za-z0-9_.\-]+)==([^\s;]+)(?: ;[^\\\n]*)?((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)",
    re.M,
)


def locked(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    pins: dict[str, str] = {canonicalize_name(m.group(1)): m.group(2) for m in PIN.finditer(text)}
    # Every requirement line is a pin with at least one hash.
    requirement_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirement_lines) == len(pins), name
    return pins


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(r) for r in names]


def test_each_lock_pins_with_hashes_what_pyproject_declares() -> None:
    for lock, extra in (("requirements.lock", None), ("requirements-dev.lock", "dev")):
        pins = locked(lock)
        for requirement in declared(extra):
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock} does not pin {name}: run scripts/lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, pyproject wants {requirement}: run scripts/lock"
            )


def test_the_dev_lock_keeps_every_production_pin() -> None:
    production, development = locked("requirements.lock"), locked("requirements-dev.lock")
    assert {n: v for n, v in development.items() if n in production} == production


def test_this_environment_is_the_dev_lock() -> None:
    # scripts/_venv.sh installs it with --require-hashes (and the project with --no-deps).
    installed: dict[str, str] = {
        canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
    }
    drift = {
        name: (version, installed.get(name))
        for name, version in locked("requirements-dev.lock").items()
        if installed.get(name) != version
    }
    assert not drift, f"installed differs from requirements-dev.lock: {drift}"


def test_the_image_and_the_dev_environment_install_from_the_locks() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--no-deps ." in dockerfile
    venv = (ROOT / "scripts" / "_venv.sh").read_text()
    assert "--require-hashes -r requirements-dev.lock" in venv
    assert "--no-deps" in venv
