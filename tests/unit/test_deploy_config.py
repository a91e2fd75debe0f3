"""What docker-compose.yml and the k8s manifests give each service, beyond what test_k8s_manifests checks."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # PyYAML applies the << merges


def k8s_container(name: str) -> dict:
    documents = yaml.safe_load_all((ROOT / "deploy" / "k8s" / f"{name}.yaml").read_text())
    deployment = next(doc for doc in documents if doc and doc["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def k8s_env(name: str) -> dict:
    return {variable["name"]: variable for variable in k8s_container(name).get("env", [])}


def test_the_viewer_gets_the_gateways_api_keys():
    """With keys on, the viewer shows each key only its tenant's jobs; it needs the same keys for that."""
    gateway, viewer = COMPOSE["services"]["gateway"]["environment"], COMPOSE["services"]["viewer"]["environment"]
    assert "PLOTFARM_API_KEYS" in gateway and viewer.get("PLOTFARM_API_KEYS") == gateway["PLOTFARM_API_KEYS"]
    assert "PLOTFARM_API_KEYS" not in COMPOSE["services"]["renderer"]["environment"]
    assert k8s_env("viewer")["PLOTFARM_API_KEYS"] == k8s_env("gateway")["PLOTFARM_API_KEYS"]
    # and neither turns the viewer's key rule off
    assert "PLOTFARM_VIEWER_REQUIRE_KEY" not in viewer and "PLOTFARM_VIEWER_REQUIRE_KEY" not in k8s_env("viewer")
