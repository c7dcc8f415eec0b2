#!/usr/bin/env bash
# Build the job's image from the project's Dockerfile without a Docker daemon or a registry.
#
#   scripts/build_image.sh            make the local base if missing, then build $IMAGE
#   scripts/build_image.sh --prune    remove $IMAGE and its build cache (keeps the base)
#   scripts/build_image.sh --clean    remove the whole private storage, base included
#   scripts/build_image.sh --save F   also write $IMAGE as a docker-archive tar (minikube image load F)
#
# Docker Hub is unreachable here, so the base (Debian bookworm + its Python 3.11) is made from
# Debian packages with mmdebstrap and imported as $BASE_IMAGE; the Dockerfile takes it as the
# BASE_IMAGE build argument. buildah runs as root with vfs storage and --isolation chroot, in a
# private --root/--runroot under $XETRA_BUILD_DIR, so nothing touches the machine's own storage.
# Environment: IMAGE (default xetra:local), BASE_IMAGE (default localhost/python:3.11-slim-bookworm),
# XETRA_BUILD_DIR (default <repo>/.build), DEBIAN_MIRROR (default: the machine's apt sources).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-xetra:local}"
BASE_IMAGE="${BASE_IMAGE:-localhost/python:3.11-slim-bookworm}"
BUILD_DIR="${XETRA_BUILD_DIR:-$REPO/.build}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-/etc/apt/sources.list.d/debian.sources}"
export CONTAINERS_CONF="$REPO/scripts/containers.conf"

STORAGE=(--root "$BUILD_DIR/storage" --runroot "$BUILD_DIR/run" --storage-driver vfs)
bh() { buildah "${STORAGE[@]}" "$@"; }
pm() { podman "${STORAGE[@]}" "$@"; }
log() { printf 'build_image: %s\n' "$*" >&2; }

make_base() {
  local rootfs="$BUILD_DIR/rootfs.tar" hooks=() crt started=$SECONDS
  # The machine's extra CA certificates (e.g. a TLS-inspecting egress proxy) go into the base
  # only, so pip inside the build can reach PyPI; the project's Dockerfile never sees them.
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] || continue
    hooks+=(--customize-hook="copy-in $crt /usr/local/share/ca-certificates/")
  done
  [ ${#hooks[@]} -eq 0 ] || hooks+=(--customize-hook='chroot "$1" update-ca-certificates')
  log "making $BASE_IMAGE from Debian bookworm packages ($DEBIAN_MIRROR)"
  # The merged-usr hook lays out /usr itself; otherwise apt pulls usrmerge and 50 MB of perl.
  mmdebstrap --variant=apt --include=python3,python3-pip,python3-venv,ca-certificates,passwd \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED; ln -sf python3 "$1"/usr/bin/python' \
    "${hooks[@]}" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --quiet bookworm "$rootfs" "$DEBIAN_MIRROR" >/dev/null
  pm import --quiet --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' \
    "$rootfs" "$BASE_IMAGE" >/dev/null
  rm -f "$rootfs"
  log "base made in $((SECONDS - started)) s"
}

prune() {
  # Everything built from the Dockerfile goes; the base stays (it is the slow, stable part).
  bh rm --all >/dev/null 2>&1 || true
  pm rmi --force "$IMAGE" >/dev/null 2>&1 || true
  pm images --all --format '{{.Repository}}:{{.Tag}} {{.ID}}' | while read -r name id; do
    [ "$name" = "$BASE_IMAGE" ] || pm rmi --force "$id" >/dev/null 2>&1 || true
  done
  log "pruned $IMAGE and its build cache (kept $BASE_IMAGE)"
}

case "${1:-}" in
  --prune) prune; exit 0 ;;
  --clean)
    bh rm --all >/dev/null 2>&1 || true
    pm rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$BUILD_DIR"
    log "removed $BUILD_DIR"; exit 0 ;;
  --save) SAVE_TO="${2:?--save needs a file name}" ;;
  "") ;;
  *) echo "usage: $0 [--prune | --clean | --save FILE]" >&2; exit 64 ;;
esac

mkdir -p "$BUILD_DIR"
pm image exists "$BASE_IMAGE" || make_base
started=$SECONDS
bh bud --quiet --isolation chroot --layers --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --file "$REPO/Dockerfile" --tag "$IMAGE" "$REPO" >/dev/null
size=$(pm image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $((SECONDS - started)) s; size $((size / 1000000)) MB"
if [ -n "${SAVE_TO:-}" ]; then
  pm save --quiet --format docker-archive -o "$SAVE_TO" "$IMAGE"
  log "saved $IMAGE to $SAVE_TO"
fi
