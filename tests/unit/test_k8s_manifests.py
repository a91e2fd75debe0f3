"""deploy/k8s/ renders and every object in it is valid, offline, against pinned schemas.

* Rendering: ``kubectl kustomize`` when a kubectl is on PATH (its output must then equal
  the small renderer here), else that renderer, which knows the few kustomization fields
  the directory uses and refuses any other.
* Built-in kinds: the Kubernetes API's own JSON schemas from PyPI ``kubernetes-validate``
  (pinned in requirements/dev.txt), strict (no unknown fields), for the oldest and newest
  Kubernetes versions we claim.
* The operators' kinds (RabbitmqCluster, ScaledObject, TriggerAuthentication): the JSON
  Schemas in deploy/k8s/schemas/, made from the operators' CRDs at pinned tags
  (deploy/k8s/schemas/sources.json, crd_to_jsonschema.py).
* Then what no schema says: probes, users, seccomp, resources, that every Service, PDB,
  Ingress and ScaledObject points at something that exists, that the ports are the ones
  the services listen on, that every PLOTFARM_ variable is a real setting, and that KEDA
  watches the queue the renderers consume.
"""

import copy
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.settings import Settings
from shared.topology import Names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
KUBERNETES_VERSIONS = ("1.30", "1.37")
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "images"}
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet"}
DEFAULTS = Settings(_env_file=None)
SERVICE_PORTS = {
    "services.gateway": DEFAULTS.gateway_port,
    "services.viewer": DEFAULTS.viewer_port,
    "services.renderer": DEFAULTS.renderer_health_port,
    "services.mcp": DEFAULTS.mcp_port,
}


# ---- rendering ------------------------------------------------------------------------------


def _set_image(container: dict, images: list[dict]) -> None:
    name = container["image"].split("@")[0].rsplit(":", 1)[0] if ":" in container["image"] else container["image"]
    for image in images:
        if image["name"] == name:
            container["image"] = (
                f"{image.get('newName', name)}:{image['newTag']}" if "newTag" in image else image.get("newName", name)
            )


def render_with_python(directory: Path) -> list[dict]:
    """What ``kustomize build`` makes of deploy/k8s, for the fields it uses."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, f"teach render_with_python these kustomization fields, or use kustomize: {unknown}"
    objects = []
    for resource in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((directory / resource).read_text()) if doc]
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        if "namespace" in kustomization and obj["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = kustomization["namespace"]
        for group in kustomization.get("labels", []):
            assert not group.get("includeSelectors") and not group.get("includeTemplates"), "not implemented here"
            metadata.setdefault("labels", {}).update(group["pairs"])
        if obj["kind"] in POD_OWNERS:
            spec = obj["spec"]["template"]["spec"]
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                _set_image(container, kustomization.get("images", []))
    return objects


def _canonical(objects: list[dict]) -> list[str]:
    return sorted(json.dumps(obj, sort_keys=True) for obj in objects)


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    rendered = render_with_python(K8S)
    kubectl = shutil.which("kubectl")
    if kubectl:
        built = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
        if built.returncode == 0:
            real = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
            assert _canonical(real) == _canonical(rendered), "kubectl kustomize and render_with_python disagree"
            return real
        # A kubectl without kustomize support (very old) says so; the Python renderer stands in.
        assert "unknown command" in built.stderr or "kustomize" in built.stderr, built.stderr
    return rendered


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


# ---- schemas --------------------------------------------------------------------------------

CRD_SCHEMAS = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster-rabbitmq-v1beta1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda-v1alpha1.json",
}


def validate_custom(obj: dict) -> None:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[(obj["apiVersion"], obj["kind"])]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{obj['kind']}/{obj['metadata']['name']} {list(e.path)}: {e.message}" for e in errors)


def test_the_directory_renders_to_the_objects_plotfarm_needs(objects):
    kinds = sorted({obj["kind"] for obj in objects})
    assert kinds == sorted(
        {
            "ConfigMap",
            "Deployment",
            "Ingress",
            "Namespace",
            "PodDisruptionBudget",
            "RabbitmqCluster",
            "ScaledObject",
            "Service",
            "TriggerAuthentication",
        }
    )
    assert set(of_kind(objects, "Deployment")) == {
        "plotfarm-gateway",
        "plotfarm-viewer",
        "plotfarm-renderer",
        "plotfarm-mcp",
    }
    assert all(obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "plotfarm" for obj in objects)
    assert all(obj["metadata"].get("namespace") == "plotfarm" for obj in objects if obj["kind"] != "Namespace")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_builtin_object_is_valid(objects, version):
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on Kubernetes {version}: {exc.path}: {exc.message}")


def test_every_operator_object_is_valid_against_its_crd(objects):
    custom = [obj for obj in objects if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS]
    assert {obj["kind"] for obj in custom} == {"RabbitmqCluster", "ScaledObject", "TriggerAuthentication"}
    for obj in custom:
        validate_custom(obj)


def test_the_crd_schemas_catch_mistakes(objects):
    """The committed schemas are strict: an unknown field or a wrong type fails."""
    cluster = copy.deepcopy(of_kind(objects, "RabbitmqCluster")["plotfarm-rabbitmq"])
    cluster["spec"]["replica"] = 3
    with pytest.raises(AssertionError, match="replica"):
        validate_custom(cluster)
    scaled = copy.deepcopy(of_kind(objects, "ScaledObject")["plotfarm-renderer"])
    scaled["spec"]["minReplicaCount"] = "one"
    with pytest.raises(AssertionError, match="minReplicaCount"):
        validate_custom(scaled)
    sources = json.loads((SCHEMAS / "sources.json").read_text())
    assert set(sources) == set(CRD_SCHEMAS.values())
    assert all("@v" in entry["source"] and len(entry["sha256"]) == 64 for entry in sources.values())


# ---- what the schemas cannot say ------------------------------------------------------------


def _pod_spec(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def _module(container: dict) -> str:
    command = container["command"]
    return command[command.index("-m") + 1]


def test_deployments_are_locked_down_and_probed(objects):
    for name, deployment in of_kind(objects, "Deployment").items():
        pod = _pod_spec(deployment)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 1000, name
        seccomp = pod["securityContext"]["seccompProfile"]
        if name == "plotfarm-renderer":
            # The profile from deploy/ that allows Chromium's namespaces (issue 14), on every node.
            assert seccomp == {"type": "Localhost", "localhostProfile": "plotfarm-renderer.json"}
        else:
            assert seccomp == {"type": "RuntimeDefault"}, name
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"], name
        assert context.get("privileged") is not True, name
        port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert list(port_names.values()) == [SERVICE_PORTS[_module(container)]], name
        probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")}
        assert probes["liveness"]["path"] == "/healthz" and probes["readiness"]["path"] == "/readyz", name
        assert all(probe["port"] in port_names for probe in probes.values()), name
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], name
        assert (ROOT / _module(container).replace(".", "/") / "__main__.py").is_file(), name
    renderer = of_kind(objects, "Deployment")["plotfarm-renderer"]
    assert "replicas" not in renderer["spec"], "KEDA owns the renderer count"
    assert _pod_spec(renderer)["terminationGracePeriodSeconds"] > DEFAULTS.shutdown_grace_s


def test_environment_names_real_settings_and_the_operators_secret(objects):
    settings = {f"PLOTFARM_{name.upper()}" for name in Settings.model_fields}
    config = of_kind(objects, "ConfigMap")["plotfarm-config"]["data"]
    assert set(config) <= settings, set(config) - settings
    cluster = next(iter(of_kind(objects, "RabbitmqCluster")))
    for name, deployment in of_kind(objects, "Deployment").items():
        (container,) = _pod_spec(deployment)["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": "plotfarm-config"}}], name
        for variable in container.get("env", []):
            assert variable["name"] in settings, (name, variable["name"])
            secret = variable.get("valueFrom", {}).get("secretKeyRef")
            if variable["name"] == "PLOTFARM_AMQP_URL":
                assert secret == {"name": f"{cluster}-default-user", "key": "connection_string"}, name
    assert config["PLOTFARM_MCP_GATEWAY_URL"] == f"http://plotfarm-gateway:{DEFAULTS.gateway_port}"


def test_services_pdbs_and_ingress_point_at_what_exists(objects):
    deployments = of_kind(objects, "Deployment")
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    cluster = of_kind(objects, "RabbitmqCluster")
    pod_labels |= {name: {"app.kubernetes.io/name": name} for name in cluster}  # as the operator labels its pods

    def selects(selector: dict) -> list[str]:
        return [name for name, labels in pod_labels.items() if selector.items() <= labels.items()]

    services = of_kind(objects, "Service")
    for name, service in services.items():
        (target,) = selects(service["spec"]["selector"])
        (container,) = _pod_spec(deployments[target])["containers"]
        names = {port["name"] for port in container["ports"]}
        assert all(port["targetPort"] in names for port in service["spec"]["ports"]), name
    for deployment in deployments.values():
        assert (
            deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels[deployment["metadata"]["name"]].items()
        )
    pdbs = of_kind(objects, "PodDisruptionBudget")
    covered = {target for pdb in pdbs.values() for target in selects(pdb["spec"]["selector"]["matchLabels"])}
    assert covered == set(pod_labels), "every Deployment and the RabbitMQ cluster has a PodDisruptionBudget"
    assert all(len(selects(pdb["spec"]["selector"]["matchLabels"])) == 1 for pdb in pdbs.values())

    (ingress,) = of_kind(objects, "Ingress").values()
    backends = {
        path["backend"]["service"]["name"]: path["backend"]["service"]["port"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"plotfarm-gateway": "http", "plotfarm-viewer": "http"}
    assert all(port in {p["name"] for p in services[name]["spec"]["ports"]} for name, port in backends.items())
    config = of_kind(objects, "ConfigMap")["plotfarm-config"]["data"]
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert {config["PLOTFARM_PUBLIC_GATEWAY_URL"], config["PLOTFARM_PUBLIC_VIEWER_URL"]} == {
        f"https://{host}" for host in hosts
    }


def test_keda_scales_renderers_on_the_jobs_queue(objects):
    (scaled,) = of_kind(objects, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] in of_kind(objects, "Deployment")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "plotfarm-renderer"
    (trigger,) = scaled["spec"]["triggers"]
    namespace = of_kind(objects, "ConfigMap")["plotfarm-config"]["data"]["PLOTFARM_NAMESPACE"]
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["metadata"]["queueName"] == Names(namespace).jobs_queue == "plotfarm.jobs"
    auth = of_kind(objects, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    cluster = next(iter(of_kind(objects, "RabbitmqCluster")))
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": f"{cluster}-default-user", "key": "connection_string"}
    ]
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]


def test_rabbitmq_is_a_three_node_cluster(objects):
    (cluster,) = of_kind(objects, "RabbitmqCluster").values()
    assert cluster["spec"]["replicas"] == 3
    (pdb,) = [
        p for p in of_kind(objects, "PodDisruptionBudget").values() if p["metadata"]["name"] == "plotfarm-rabbitmq"
    ]
    assert pdb["spec"]["maxUnavailable"] == 1  # a quorum of 2 out of 3 stays up
