#!/bin/sh
# plotfarm with podman-compose on a machine without Docker (see deploy/README.md):
#   deploy/podman-stack.sh up      build what is missing, start rabbitmq, gateway (:13000),
#                                  viewer (:18000) and $RENDERERS renderers (default 2)
#   deploy/podman-stack.sh down    stop and remove every container of the project
#   deploy/podman-stack.sh ANY...  any other podman-compose command (ps, logs, build, ...)
# PODMAN_COMPOSE names the podman-compose 1.6+ to use (default: podman-compose on PATH).
set -eu
cd "$(dirname "$0")/.."
PODMAN_COMPOSE=${PODMAN_COMPOSE:-podman-compose}
compose() { "$PODMAN_COMPOSE" -f docker-compose.yml -f deploy/compose.podman.yml "$@"; }

case "${1:-}" in
    up)
        shift
        compose up -d --scale renderer="${RENDERERS:-2}" "$@"
        echo "gateway http://localhost:13000  viewer http://localhost:18000  (renderers need about a minute to warm up)"
        ;;
    down)
        # podman-compose 1.6 `down` only knows renderer_1, and would stop the
        # broker before the other --scale replicas. So stop every renderer first
        # (45 s, as stop_grace_period: in-flight jobs finish and are acked),
        # remove the extra replicas, then take the rest down; --remove-orphans
        # catches anything left with the project's label.
        shift
        project=${COMPOSE_PROJECT_NAME:-plotfarm}
        renderers=$(podman ps -a --format '{{.Names}}' \
            --filter "label=io.podman.compose.project=$project" \
            --filter "label=com.docker.compose.service=renderer")
        if [ -n "$renderers" ]; then
            # shellcheck disable=SC2086  # one name per word
            podman stop -t 45 $renderers >/dev/null
            for name in $renderers; do
                [ "$name" = "${project}_renderer_1" ] || podman rm "$name" >/dev/null
            done
        fi
        compose down --remove-orphans "$@"
        ;;
    "")
        sed -n '2,8p' "$0"; exit 2
        ;;
    *)
        compose "$@"
        ;;
esac
