"""What docker-compose.yml and the k8s manifests give each service, beyond what test_k8s_manifests checks."""

import re
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
    from services.mcp.app import transport_security

    compose = COMPOSE["services"]["mcp"]["environment"]["PLOTFARM_MCP_ALLOWED_HOSTS"]
    allowed = transport_security(compose).allowed_hosts
    assert {"mcp:*", "localhost:*"} <= set(allowed)  # other containers, and the published port
    k8s = k8s_env("mcp")["PLOTFARM_MCP_ALLOWED_HOSTS"]["value"]
    namespace = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())["namespace"]
    allowed = set(transport_security(k8s).allowed_hosts)
    assert {"plotfarm-mcp:*", f"plotfarm-mcp.{namespace}.svc:*", "localhost:*"} <= allowed
    assert not any(host.startswith("*") for host in allowed)


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, "g": 2**30, "m": 2**20}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return int(float(quantity[: -len(unit)]) * factor)
    return int(quantity)


def test_the_renderers_memory_limit_holds_its_jobs_at_their_caps():
    """Every job in flight may fill its interpreter's capped memory and its worker's JavaScript heap at once."""
    from shared.settings import Settings, renderer_memory_mb

    config = yaml.safe_load((ROOT / "deploy" / "k8s" / "config.yaml").read_text())["data"]
    env = {**config, **{name: v["value"] for name, v in k8s_env("renderer").items() if "value" in v}}
    needed = renderer_memory_mb(
        Settings(_env_file=None, **{k.removeprefix("PLOTFARM_").lower(): v for k, v in env.items()})
    )
    limit = k8s_container("renderer")["resources"]["limits"]["memory"]
    assert _bytes(limit) >= needed * 10**6, (limit, needed)
    compose = COMPOSE["services"]["renderer"]
    settings = {k.removeprefix("PLOTFARM_").lower(): v for k, v in compose["environment"].items()}
    assert _bytes(compose["mem_limit"]) >= renderer_memory_mb(Settings(_env_file=None, **settings)) * 10**6


DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()


def _pinned_base(dockerfile: str) -> str:
    (line,) = [line for line in dockerfile.splitlines() if line.startswith("ARG BASE_IMAGE=")]
    return line.split("=", 1)[1]


def test_the_images_start_from_one_pinned_base():
    """Both Dockerfiles build on the same debian:bookworm-slim, pinned by digest (a tag can move)."""
    base = _pinned_base(DOCKERFILE)
    assert re.fullmatch(r"docker\.io/library/debian:bookworm-slim@sha256:[0-9a-f]{64}", base), base
    assert _pinned_base((ROOT / "deploy" / "rabbitmq.Dockerfile").read_text()) == base


def _stage(name: str) -> str:
    """The instructions of one stage of deploy/Dockerfile, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.M)
    (stage,) = [s for s in stages if re.match(rf"\S+ AS {name}\s", s)]
    return stage


def test_runtime_images_hold_no_build_tools():
    """The app and renderer stages start from the base and install no compiler, npm, make or pip."""
    for name in ("app", "renderer"):
        stage = _stage(name)
        assert stage.startswith("base AS"), name
        assert not re.search(r"\b(make|nodejs|npm|gcc|g\+\+|build-essential|python3-venv|python3-pip)\b", stage), name
        assert "requirements/dev.txt" not in stage
    base = _stage("base")
    assert not re.search(r"\b(make|nodejs|npm|gcc|build-essential)\b", base)
    assert "--require-hashes -r requirements/app.txt" in _stage("venv")


def test_the_renderer_image_has_the_makefiles_fonts():
    """Figures look the same in a container as on a host: the image installs `make fonts`'s list."""
    makefile = (ROOT / "Makefile").read_text()
    fonts = re.search(r"^FONTS := (.+)$", makefile, flags=re.M).group(1).split()
    installed = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", _stage("renderer")).group(1).split()
    assert set(fonts) <= set(installed), set(fonts) - set(installed)
    assert "chromium" in installed


def test_compose_hardens_every_plotfarm_service_as_k8s_does():
    for service in ("gateway", "viewer", "mcp", "renderer"):
        compose = COMPOSE["services"][service]
        k8s = k8s_container(service)["securityContext"]
        assert k8s["readOnlyRootFilesystem"] and compose["read_only"] is True, service
        assert k8s["capabilities"]["drop"] == ["ALL"] and compose["cap_drop"] == ["ALL"], service
        assert not compose.get("cap_add"), service
        assert k8s["allowPrivilegeEscalation"] is False and "no-new-privileges:true" in compose["security_opt"], service
        assert any(mount.split(":")[0] == "/tmp" for mount in compose["tmpfs"]), service
    renderer = COMPOSE["services"]["renderer"]
    assert "seccomp=${RENDERER_SECCOMP:-./deploy/seccomp-renderer.json}" in renderer["security_opt"]
    assert not any("unconfined" in option for option in renderer["security_opt"])
    assert (
        renderer["environment"]["PLOTFARM_NETWORK_NAMESPACE"]
        == k8s_env("renderer")["PLOTFARM_NETWORK_NAMESPACE"]["value"]
    )


def test_the_podman_override_moves_every_published_port():
    """deploy/compose.podman.yml leaves 3000, 8000 and 3001 to a `make run` on the same machine."""
    override = (ROOT / "deploy" / "compose.podman.yml").read_text()
    published = re.findall(r'ports: !override \["(\d+):(\d+)"\]', override)
    moved = {container: host for host, container in published}
    for service in ("gateway", "viewer", "mcp"):
        (port,) = [p.split(":")[1] for p in COMPOSE["services"][service]["ports"]]
        assert port in moved and moved[port] != port, service
