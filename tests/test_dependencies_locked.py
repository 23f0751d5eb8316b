"""requirements.lock pins every dependency the project declares, at versions its ranges allow,
and the environment the suite runs in was installed from it: a dependency added to
pyproject.toml without regenerating the lock, or an environment drifted to other versions,
fails here rather than in production."""

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not a pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [Requirement(spec) for spec in
            [*project["dependencies"], *(spec for group in extras for spec in group)]]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{requirement.name}=={pins[name]} is outside {requirement.specifier}")


def test_the_installed_packages_are_the_locked_versions():
    pins = locked()
    installed = {canonicalize_name(dist.metadata["Name"]): dist.version
                 for dist in metadata.distributions()}
    # The suite's environment holds every extra (./scripts/test installs test and docs; test
    # includes the real engine's); each locked package it holds is at its pinned version.
    assert {canonicalize_name(r.name) for r in declared()} <= installed.keys()
    drifted = {name: (installed[name], version) for name, version in pins.items()
               if name in installed and installed[name] != version}
    assert not drifted, drifted
