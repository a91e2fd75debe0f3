#!/bin/sh
# plotfarm with podman-compose on a machine without Docker (see deploy/README.md):
#   deploy/podman-stack.sh up      start rabbitmq, gateway (:13000), viewer (:18000), MCP server
#                                  (:13001) and $RENDERERS renderers (default 2); images missing
#                                  are built first (make images builds them ahead)
#   deploy/podman-stack.sh down    stop and remove every container of the project (add -v: its volumes)
#   deploy/podman-stack.sh ANY...  any other podman-compose command (ps, logs, build, ...)
# PODMAN_COMPOSE: the podman-compose 1.6+ to use (default: the one `make podman` installs in
# build/podman-compose, else podman-compose on PATH). COMPOSE_FILE (default
# docker-compose.yml:deploy/compose.podman.yml) and COMPOSE_PROJECT_NAME (default plotfarm)
# as in Compose; the container test uses both.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${PODMAN_COMPOSE:-}" ]; then
    if [ -x build/podman-compose/bin/podman-compose ]; then PODMAN_COMPOSE=build/podman-compose/bin/podman-compose
    else PODMAN_COMPOSE=podman-compose; fi
fi
project=${COMPOSE_PROJECT_NAME:-plotfarm}
files=
old_ifs=$IFS; IFS=:
for file in ${COMPOSE_FILE:-docker-compose.yml:deploy/compose.podman.yml}; do files="$files -f $file"; done
IFS=$old_ifs
# shellcheck disable=SC2086  # $files: one word per argument (paths without spaces)
compose() { "$PODMAN_COMPOSE" -p "$project" $files "$@"; }

case "${1:-}" in
    up)
        shift
        compose up -d --scale renderer="${RENDERERS:-2}" "$@"
        echo "gateway http://localhost:13000  viewer http://localhost:18000  MCP http://localhost:13001/mcp  (renderers need about a minute to warm up)"
        ;;
    down)
        # podman-compose 1.6 `down` only knows renderer_1, and would stop the
        # broker before the other --scale replicas. So stop every renderer first
        # (45 s, as stop_grace_period: in-flight jobs finish and are acked),
        # remove the extra replicas, then take the rest down; --remove-orphans
        # catches anything left with the project's label.
        shift
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
        sed -n '2,11p' "$0"; exit 2
        ;;
    *)
        compose "$@"
        ;;
esac
