#!/bin/sh
# Build plotfarm's images from the repository root (`make images` runs this):
#   plotfarm-app       gateway and viewer   (deploy/Dockerfile, target app)
#   plotfarm-renderer  renderer + Chromium  (deploy/Dockerfile, target renderer)
#   plotfarm-rabbitmq  RabbitMQ from Debian (deploy/rabbitmq.Dockerfile), only with
#                      podman or RABBITMQ=1: docker-compose.yml otherwise uses the
#                      official rabbitmq image.
# ENGINE=docker|podman picks the engine (default: docker if its daemon answers, else podman).
# Machines that cannot pull images need the local base image first:
#   deploy/podman-base-image.sh
set -eu
cd "$(dirname "$0")/.."

if [ -z "${ENGINE:-}" ]; then
    # docker only when its daemon answers: a docker CLI alone builds nothing.
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi
command -v "$ENGINE" >/dev/null 2>&1 || { echo "neither docker nor podman is installed" >&2; exit 1; }
if [ "$ENGINE" = podman ] && ! podman image exists debian:bookworm-slim; then
    echo "note: no local debian:bookworm-slim; if this machine cannot pull images, run deploy/podman-base-image.sh first" >&2
fi

build() {  # $1: image name, rest: build arguments
    name=$1; shift
    start=$(date +%s)
    "$ENGINE" build "$@" -t "$name" .
    echo "built $name in $(( $(date +%s) - start )) s"
}

build plotfarm-app      -f deploy/Dockerfile --target app
build plotfarm-renderer -f deploy/Dockerfile --target renderer
if [ "$ENGINE" = podman ] || [ "${RABBITMQ:-0}" = 1 ]; then
    start=$(date +%s)
    "$ENGINE" build -f deploy/rabbitmq.Dockerfile -t plotfarm-rabbitmq deploy/
    echo "built plotfarm-rabbitmq in $(( $(date +%s) - start )) s"
fi
"$ENGINE" images --filter 'reference=*plotfarm-*'
