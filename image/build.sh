#!/usr/bin/env bash
# Builds (and optionally pushes) strahl's bootc appliance image from this checkout.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: image/build.sh [options]

Builds strahl's bootc image (image/Containerfile) with the repository as context.

  --base IMAGE        bootc base image (default ghcr.io/ublue-os/bazzite:stable;
                      e.g. ghcr.io/ublue-os/bazzite-nvidia:stable, quay.io/fedora/fedora-bootc:43)
  --tag NAME          name of the built image (default localhost/strahl:latest)
  --profiles LIST     kernel-config profiles: core[,dataplane][,headless]
                      (default core,dataplane,headless; see kernel-config/README.md)
  --rust-image IMAGE  build-stage toolchain image (default docker.io/library/rust:1.95-bookworm)
  --push REF          after building, push the image to REF (e.g. ghcr.io/YOU/strahl:latest)
  --engine NAME       podman (default when installed), docker or buildah
  --dry-run           print the commands instead of running them
  -h, --help          this text

Then, on the box: sudo bootc switch REF && sudo systemctl reboot (README.md, "Appliance image").
USAGE
}

base=ghcr.io/ublue-os/bazzite:stable
tag=localhost/strahl:latest
profiles=core,dataplane,headless
rust_image=docker.io/library/rust:1.95-bookworm
push=""
engine=""
dry=0
while (($#)); do
  case $1 in
    --base) base=${2:?--base needs an image}; shift 2 ;;
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    --profiles) profiles=${2:?--profiles needs a list}; shift 2 ;;
    --rust-image) rust_image=${2:?--rust-image needs an image}; shift 2 ;;
    --push) push=${2:?--push needs a reference}; shift 2 ;;
    --engine) engine=${2:?--engine needs a name}; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for p in ${profiles//,/ }; do
  case $p in core | dataplane | headless) ;; *) echo "build.sh: unknown profile: $p" >&2; exit 2 ;; esac
done
if [ -z "$engine" ]; then
  for e in podman docker buildah; do
    if command -v "$e" >/dev/null; then engine=$e; break; fi
  done
  if [ -z "$engine" ]; then
    if [ "$dry" -eq 0 ]; then
      echo "build.sh: need podman, docker or buildah" >&2
      exit 1
    fi
    engine=podman
  fi
fi
case $engine in
  podman | docker) build=("$engine" build) ;;
  buildah) build=(buildah bud) ;;
  *) echo "build.sh: unknown engine: $engine" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run() {
  if [ "$dry" -eq 1 ]; then
    printf '%q ' "$@"
    echo
  else
    "$@"
  fi
}

run "${build[@]}" -f "$repo/image/Containerfile" \
  --build-arg "BASE=$base" --build-arg "PROFILES=$profiles" --build-arg "RUST_IMAGE=$rust_image" \
  -t "$tag" "$repo"
if [ -n "$push" ]; then
  run "$engine" tag "$tag" "$push"
  run "$engine" push "$push"
fi
