#!/bin/sh
# Make the base image locally, for machines that cannot pull images from a
# registry (deploy/build-images.sh runs it there by itself when it is root;
# everywhere else the builds pull the pinned official debian:bookworm-slim).
#
#   sudo deploy/podman-base-image.sh          # needs root, debootstrap and podman
#
# It bootstraps a minimal Debian 12 (debootstrap --variant=minbase) from the
# Debian mirror apt already uses on this host, trims it like the official slim
# image, and imports it as localhost/plotfarm-base:bookworm-slim, which
# build-images.sh passes to the Dockerfiles as BASE_IMAGE. It is not the
# official image and is not tagged as one.
#
# No certificate goes into it: where HTTPS from inside builds goes through a
# TLS-intercepting proxy, build-images.sh hands the host's CA bundle to the
# build stages as a build secret, which no image layer keeps.
#
# Environment: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: what apt uses
# here), SUITE (bookworm), IMAGE (localhost/plotfarm-base:bookworm-slim), PODMAN (podman).
set -eu

SUITE=${SUITE:-bookworm}
IMAGE=${IMAGE:-localhost/plotfarm-base:$SUITE-slim}
PODMAN=${PODMAN:-podman}

# The first Debian mirror in apt's sources (deb822 or one-line format).
apt_uri() {  # $1: grep pattern the URI must match, $2: one it must not
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
    } | grep -E "$1" | grep -vE "$2" | head -n1
}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(apt_uri '/debian/?$' 'security')}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(apt_uri 'debian-security/?$' '^$')}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap needs it)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "install debootstrap: apt-get install -y debootstrap" >&2; exit 1; }

ROOTFS=$(mktemp -d /var/tmp/plotfarm-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT INT TERM

echo "debootstrap $SUITE from $DEBIAN_MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR" >"$ROOTFS.log" 2>&1 \
    || { tail -n 30 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"

# apt sources like the official image: the release, its updates and security.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Slim like the official image: no docs, man pages or translations from later
# installs, and apt keeps no downloaded packages.
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
printf 'APT::Install-Recommends "false";\n' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*

echo "importing as $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | "$PODMAN" import --quiet \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase by debootstrap from $DEBIAN_MIRROR (plotfarm deploy/podman-base-image.sh)\"" \
    - "$IMAGE" >/dev/null
"$PODMAN" images --filter "reference=$IMAGE"
