#!/bin/sh
# Build plotfarm's images from the repository root (`make images` runs this), with layer caching:
#   plotfarm-app       gateway, viewer, MCP server  (deploy/Dockerfile, target app)
#   plotfarm-renderer  renderer + Chromium          (deploy/Dockerfile, target renderer)
#   plotfarm-rabbitmq  RabbitMQ from Debian (deploy/rabbitmq.Dockerfile), only with podman or
#                      RABBITMQ=1: docker-compose.yml otherwise uses the official rabbitmq image.
#
# ENGINE=docker|podman picks the engine (default: docker if its daemon answers, else podman).
# BASE_IMAGE overrides the Dockerfiles' pinned debian:bookworm-slim. With podman, when that
# cannot be pulled (no registry reachable), the local base image is used, made first by
# deploy/podman-base-image.sh when missing (as root).
# CA_BUNDLE: a CA bundle the build stages give pip and npm, as the build secret `ca-bundle`
# (default: this host's /etc/ssl/certs/ca-certificates.crt when it exists), for HTTPS through a
# TLS-intercepting proxy. It is never stored in an image. CA_BUNDLE=none passes none.
set -eu
cd "$(dirname "$0")/.."

if [ -z "${ENGINE:-}" ]; then
    # docker only when its daemon answers: a docker CLI alone builds nothing.
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi
command -v "$ENGINE" >/dev/null 2>&1 || { echo "neither a Docker engine nor podman (make podman installs it)" >&2; exit 1; }

PINNED=$(sed -n 's/^ARG BASE_IMAGE=//p' deploy/Dockerfile)
LOCAL_BASE=localhost/plotfarm-base:bookworm-slim
if [ -z "${BASE_IMAGE:-}" ]; then
    BASE_IMAGE=$PINNED
    if [ "$ENGINE" = podman ] && ! podman image exists "$PINNED" && ! podman pull -q "$PINNED" >/dev/null 2>&1; then
        if ! podman image exists "$LOCAL_BASE"; then
            echo "cannot pull $PINNED; making the base image locally (deploy/podman-base-image.sh)" >&2
            [ "$(id -u)" = 0 ] || { echo "that needs root: sudo deploy/podman-base-image.sh" >&2; exit 1; }
            deploy/podman-base-image.sh
        fi
        BASE_IMAGE=$LOCAL_BASE
        echo "base image: $BASE_IMAGE (local; $PINNED cannot be pulled here)"
    fi
fi

CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
set --
if [ "$CA_BUNDLE" != none ] && [ -r "$CA_BUNDLE" ]; then set -- --secret "id=ca-bundle,src=$CA_BUNDLE"; fi
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$REVISION" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    REVISION="$REVISION-modified"
fi

# $1 image name, $2 Dockerfile, $3 target (or ""), $4 context; the rest: more build arguments.
# The image it replaces is removed unless a container uses it, so that rebuilding after every
# change (make test does) leaves no pile of old images; the build cache stays.
build_image() {
    name=$1 file=$2 target=$3 context=$4; shift 4
    start=$(date +%s)
    old=$("$ENGINE" image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)
    "$ENGINE" build "$@" -f "$file" ${target:+--target "$target"} -t "$name" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" "$context"
    if [ -n "$old" ] && [ "$old" != "$("$ENGINE" image inspect --format '{{.Id}}' "$name")" ]; then
        "$ENGINE" rmi "$old" >/dev/null 2>&1 || true
    fi
    echo "built $name in $(( $(date +%s) - start )) s"
}

# "$@": the build secret, when there is one.
build_image plotfarm-app      deploy/Dockerfile app      . "$@"
build_image plotfarm-renderer deploy/Dockerfile renderer . "$@"
if [ "$ENGINE" = podman ] || [ "${RABBITMQ:-0}" = 1 ]; then
    build_image plotfarm-rabbitmq deploy/rabbitmq.Dockerfile "" deploy "$@"
fi
"$ENGINE" images --filter 'reference=*plotfarm-*'
