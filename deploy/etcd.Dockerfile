# etcd for the name servers' shared state (docker-compose.yml's etcd-1..3): Debian's
# etcd-server and etcd-client packages, etcd 3.4 — the etcd the tests run against and
# nameserver/metadata-store/README.md measured. One image for every member; the compose
# command gives each its name, URLs and --initial-cluster.
#
# The base is the Debian release the ugcfs image's base (node:20-bookworm-slim) is built on.
# On a host that cannot pull it, deploy/build-base.sh makes one from Debian's own packages
# (ugcfs-debian:bookworm) and deploy/build-images.sh passes it as BASE.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# The package's postinst would start etcd's init script; nothing runs services at build time.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /usr/sbin/policy-rc.d \
 && install -d -o etcd -g etcd -m 700 /var/lib/etcd
# etcd 3.4 refuses to start on arm64 unless told so; amd64 ignores this.
ENV ETCD_UNSUPPORTED_ARCH=arm64 \
    ETCDCTL_API=3
# The member's data (--data-dir below it) is a volume, owned by the package's etcd user.
USER etcd
WORKDIR /var/lib/etcd
VOLUME ["/var/lib/etcd"]
EXPOSE 2379 2380
# A member is healthy when it answers through a quorum (etcdctl reads a key linearizably).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["etcdctl", "--endpoints=http://127.0.0.1:2379", "--command-timeout=4s", "endpoint", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/etcd"]
