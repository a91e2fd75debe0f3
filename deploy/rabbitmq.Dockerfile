# RabbitMQ from Debian's package (3.10), for machines that cannot pull rabbitmq:* images.
# docker-compose.yml uses the official image by default; deploy/compose.podman.yml
# builds this one instead (see deploy/README.md). Give the container a fixed
# hostname: the broker's data directory is named after it.
#   podman build -f deploy/rabbitmq.Dockerfile -t plotfarm-rabbitmq deploy/
# (deploy/build-images.sh passes BASE_IMAGE: the local base image where none can be pulled.)
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 && printf 'loopback_users = none\nlisteners.tcp.default = 5672\n' > /etc/rabbitmq/rabbitmq.conf
# Log to stdout (`docker logs`), not to files under /var/log/rabbitmq.
ENV RABBITMQ_LOGS=-
EXPOSE 5672
USER rabbitmq
WORKDIR /var/lib/rabbitmq
# The real start script, not Debian's /usr/sbin/rabbitmq-server wrapper: the
# wrapper sends all output to /var/log/rabbitmq/startup_log and, as PID 1 that
# neither execs nor traps SIGTERM, ignores `docker stop` until it is killed.
# This script traps SIGTERM and stops the broker cleanly.
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
LABEL org.opencontainers.image.title="plotfarm-rabbitmq" \
      org.opencontainers.image.description="RabbitMQ from Debian's rabbitmq-server package, for plotfarm where rabbitmq images cannot be pulled"
# Last, as they change with every build. The RUN makes podman 4.3's buildah see new values: it
# caches a LABEL by its text before the arguments are put in.
ARG BASE_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
RUN true
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
