#!/usr/bin/env bash
# Builds the three images docker-compose.yml runs: ugcfs:local (Dockerfile), ugcfs-etcd:local
# (deploy/etcd.Dockerfile) and ugcfs-edge:local (deploy/compose/edge.Dockerfile).
#
# Their bases are node:20-bookworm-slim and debian:bookworm-slim from Docker Hub when this
# host has them or can pull them; otherwise the local bases of deploy/build-base.sh
# (ugcfs-node:20-bookworm, ugcfs-debian:bookworm), made first if missing. UGCFS_NODE_BASE /
# UGCFS_DEBIAN_BASE name other bases; UGCFS_LOCAL_BASE=1 skips the pull and uses the local ones.
# Prints the bases chosen, the time each build took and the image sizes; the last line is
# `UGCFS_NODE_BASE=… UGCFS_DEBIAN_BASE=…`, which compose takes for `up --build` too.
set -euo pipefail
cd "$(dirname "$0")/.."
docker=${DOCKER:-docker}

have() { "$docker" image inspect "$1" >/dev/null 2>&1; }
pullable() { [ "${UGCFS_LOCAL_BASE:-0}" != 1 ] && { have "$1" || "$docker" pull -q "$1" >/dev/null 2>&1; }; }

node_base=${UGCFS_NODE_BASE:-}
debian_base=${UGCFS_DEBIAN_BASE:-}
if [ -z "$node_base" ] || [ -z "$debian_base" ]; then
  if pullable node:20-bookworm-slim && pullable debian:bookworm-slim; then
    node_base=${node_base:-node:20-bookworm-slim}
    debian_base=${debian_base:-debian:bookworm-slim}
  else
    node_base=${node_base:-ugcfs-node:20-bookworm}
    debian_base=${debian_base:-ugcfs-debian:bookworm}
    if ! have "$node_base" || ! have "$debian_base"; then
      echo "build-images: Docker Hub's bases cannot be pulled; building local ones (deploy/build-base.sh)" >&2
      UGCFS_NODE_BASE=$node_base UGCFS_DEBIAN_BASE=$debian_base deploy/build-base.sh
    fi
  fi
fi
echo "build-images: bases $node_base and $debian_base" >&2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
build() { # build TAG DOCKERFILE BASE; the build's output only when it fails
  local t0; t0=$(date +%s)
  "$docker" build -f "$2" --build-arg "BASE=$3" -t "$1" . >"$log" 2>&1 \
    || { tail -40 "$log" >&2; echo "build-images: building $1 from $2 failed" >&2; exit 1; }
  echo "build-images: $1 built in $(( $(date +%s) - t0 )) s, $("$docker" image inspect -f '{{.Size}}' "$1") bytes" >&2
}
build ugcfs:local Dockerfile "$node_base"
build ugcfs-etcd:local deploy/etcd.Dockerfile "$debian_base"
build ugcfs-edge:local deploy/compose/edge.Dockerfile "$debian_base"
echo "UGCFS_NODE_BASE=$node_base UGCFS_DEBIAN_BASE=$debian_base"
