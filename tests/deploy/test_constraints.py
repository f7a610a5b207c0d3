"""constraints.txt, the lock: the one version of every distribution ``.[test]`` installs, as tested.

``make test`` and docker/Dockerfile install with it (pip's ``--constraint``), so that CI and the
image get what was tested rather than whatever was released since. These tests keep it and
pyproject.toml's ranges from drifting apart (``make lock`` regenerates it from them), check that
the Makefile installs with it, and that this environment holds exactly what it pins.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from tests.deploy import LOCK_NAME, ROOT, installs_with_the_lock

LOCK = ROOT / LOCK_NAME
PROJECT = canonicalize_name("cronjob")


def read_lock(text: str) -> dict[NormalizedName, Version]:
    """The pins of a constraints file by normalized name. Fails on any line (comments and blank
    lines aside) that is not one ``name==version``, and on a name pinned twice."""
    pins: dict[NormalizedName, Version] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        exact = (len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version
                 and not requirement.url and not requirement.marker and not requirement.extras)
        assert exact, f"constraints.txt line {number}: not one exact version: {line!r}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"constraints.txt line {number}: {requirement.name} pinned twice"
        assert name != PROJECT, "the project itself is not pinned (pip install -e . would refuse it)"
        pins[name] = Version(specifiers[0].version)
    return pins


def declared_requirements(extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
    """What pyproject.toml names: the runtime dependencies and those of ``extras``, following the
    project's references to its own extras (``cronjob[rocketry]`` in ``test``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT:
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def installed_closure(extras: frozenset[str] = frozenset({"test"})) -> dict[NormalizedName, Version]:
    """The installed version of every distribution the installed project needs with ``extras``,
    walked through the installed distributions' metadata, markers evaluated for this interpreter."""
    versions: dict[NormalizedName, Version] = {}
    todo: list[tuple[NormalizedName, frozenset[str]]] = [(PROJECT, extras)]
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    while todo:
        name, wanted_extras = todo.pop()
        if (name, wanted_extras) in seen:
            continue
        seen.add((name, wanted_extras))
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is required but not installed: `make .venv/.installed` installs it")
        if name != PROJECT:
            versions[name] = Version(distribution.version)
        for text in distribution.requires or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in wanted_extras or {""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return versions


@pytest.fixture(scope="module")
def pins() -> dict[NormalizedName, Version]:
    return read_lock(LOCK.read_text())


def test_every_dependency_pyproject_names_is_pinned_within_its_range(pins: dict[NormalizedName, Version]) -> None:
    """So that the lock and pyproject.toml cannot drift apart: a range changed without
    `make lock` leaves a pin outside it, a dependency added without it no pin at all."""
    problems = []
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement.name} ({requirement}) has no pin")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement.name}=={pins[name]} is outside pyproject's {requirement}")
    assert not problems, "constraints.txt against pyproject.toml (run `make lock`):\n" + "\n".join(problems)


def test_this_environment_holds_exactly_the_pinned_versions(pins: dict[NormalizedName, Version]) -> None:
    """Every distribution installed for ``cronjob[test]``, directly or through another, is pinned
    and installed at its pin: the lock is complete, and this venv was installed with it."""
    problems = []
    for name, version in sorted(installed_closure().items()):
        if name not in pins:
            problems.append(f"{name}=={version} is installed but not pinned (run `make lock`)")
        elif version != pins[name]:
            problems.append(f"{name}=={version} is installed, the lock pins {pins[name]}")
    assert not problems, "\n".join(problems) + "\n(`make .venv/.installed` installs with constraints.txt)"


def test_read_lock_refuses_anything_but_exact_pins() -> None:
    assert read_lock("# a comment\n\nUvicorn==0.54.0\n") == {"uvicorn": Version("0.54.0")}
    for line in ("uvicorn>=0.54", "uvicorn==0.54.*", "uvicorn", "uvicorn==0.54.0; python_version<'3.12'",
                 "uvicorn @ https://example.invalid/uvicorn.whl"):
        with pytest.raises(AssertionError):
            read_lock(line)
    with pytest.raises(AssertionError, match="twice"):
        read_lock("uvicorn==0.54.0\nUvicorn==0.53.0")


def _make_dry_run(target: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.fail("`make` is not on PATH (Debian: apt-get install make)", pytrace=False)
    result = subprocess.run([make, "--dry-run", "--always-make", target], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _project_installs(recipe: str) -> list[list[str]]:
    """The words of each ``pip install`` of the project with its test extra in ``recipe``."""
    lines = [line.split() for line in recipe.splitlines() if "pip install" in line]
    return [words for words in lines if any(".[test]" in word for word in words)]


def test_make_installs_the_venv_with_the_lock() -> None:
    """What `make test` and `make run` would run to install (make's dry run: nothing runs)."""
    installs = _project_installs(_make_dry_run(".venv/.installed"))
    assert installs, "no `pip install ... .[test]` in the recipe of .venv/.installed"
    for words in installs:
        assert installs_with_the_lock(words), f"installs without the lock: {' '.join(words)}"


def test_make_lock_regenerates_the_lock_from_pyprojects_ranges() -> None:
    recipe = _make_dry_run("lock")
    installs = _project_installs(recipe)
    assert installs, "`make lock` installs no `.[test]` to freeze"
    for words in installs:
        assert not installs_with_the_lock(words), f"`make lock` resolves under the old lock: {' '.join(words)}"
    assert "pip freeze" in recipe and LOCK_NAME in recipe
