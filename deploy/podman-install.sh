#!/bin/sh
# Podman for plotfarm's images and container test on a Debian machine without a Docker engine
# (`make podman` runs this; see deploy/README.md). Idempotent: each step is skipped when done.
#
# 1. Debian's podman with what the stack needs and --no-install-recommends leaves out: runc
#    (crun fails on a hybrid cgroup v1/v2 layout), catatonit (the containers' init, `init: true`),
#    the CNI dnsname plugin (containers find each other by service name), debootstrap (the
#    local base image, deploy/podman-base-image.sh). Needs root and apt-get.
# 2. /etc/containers/containers.conf, only when that file does not exist yet: runc; without
#    systemd, cgroupfs and a file events log; ulimits no higher than this shell's hard limits,
#    else every container fails with `setrlimit ... Operation not permitted`.
# 3. podman-compose 1.6 from PyPI (hash-pinned, requirements/podman-compose.txt) in a venv of
#    its own, $PODMAN_COMPOSE_VENV (default build/podman-compose); Debian's 1.0.3 ignores --scale.
#
# Environment: PYTHON (python3), PODMAN_COMPOSE_VENV.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="podman runc catatonit golang-github-containernetworking-plugin-dnsname debootstrap"
CONF=/etc/containers/containers.conf
PYTHON=${PYTHON:-python3}
VENV=${PODMAN_COMPOSE_VENV:-build/podman-compose}

missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "podman-install: missing $(echo $missing); install them as root (apt-get install --no-install-recommends ...)" >&2
        exit 1
    fi
    echo "installing from Debian:" $missing
    # shellcheck disable=SC2086  # one package per word
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >/dev/null; }
fi

if [ ! -e "$CONF" ] && [ "$(id -u)" = 0 ]; then
    nofile=$(awk '/^Max open files/ {print $5}' /proc/self/limits)   # ulimit -Hn
    nproc=$(awk '/^Max processes/ {print $4}' /proc/self/limits)      # ulimit -Hu
    [ "$nofile" = unlimited ] && nofile=1048576
    { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
    if [ -d /run/systemd/system ]; then
        engine='runtime = "runc"'
    else
        engine='runtime = "runc"
cgroup_manager = "cgroupfs"   # no systemd to manage cgroups
events_logger = "file"        # nor a journal'
    fi
    mkdir -p "$(dirname "$CONF")"
    cat >"$CONF" <<EOF
# Written by plotfarm's deploy/podman-install.sh (deploy/README.md); edit freely, it is not rewritten.
[containers]
# No higher than root's hard limits here (ulimit -Hn, ulimit -Hu), else setrlimit fails in every container.
default_ulimits = [
  "nofile=$nofile:$nofile",
  "nproc=$nproc:$nproc",
]

[engine]
$engine
EOF
    echo "wrote $CONF (runc, nofile=$nofile, nproc=$nproc$([ -d /run/systemd/system ] || echo ', cgroupfs, file events'))"
fi

if ! "$VENV/bin/podman-compose" --version >/dev/null 2>&1 \
        || [ requirements/podman-compose.txt -nt "$VENV/bin/podman-compose" ]; then
    echo "installing podman-compose 1.6 into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r requirements/podman-compose.txt
    touch "$VENV/bin/podman-compose"
fi
