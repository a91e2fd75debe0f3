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


def test_mcp_answers_the_names_it_is_reached_by():
    """DNS-rebinding protection stays on in containers: each setup lists the service's own names."""
    from services.mcp.app import transport_security  # noqa: PLC0415

    compose = COMPOSE["services"]["mcp"]["environment"]["PLOTFARM_MCP_ALLOWED_HOSTS"]
    allowed = transport_security(compose).allowed_hosts
    assert {"mcp:*", "localhost:*"} <= set(allowed)  # other containers, and the published port
    k8s = k8s_env("mcp")["PLOTFARM_MCP_ALLOWED_HOSTS"]["value"]
    namespace = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())["namespace"]
    allowed = set(transport_security(k8s).allowed_hosts)
    assert {"plotfarm-mcp:*", f"plotfarm-mcp.{namespace}.svc:*", "localhost:*"} <= allowed
    assert not any(host.startswith("*") for host in allowed)
