#!/usr/bin/env bash
# A stand-in for the images' base (python:3.11-slim-bookworm, docker/Dockerfile and docker/Dockerfile.cpu) on a
# machine that reaches the Debian archive but no container registry: Debian bookworm bootstrapped from the archive
# (debootstrap --variant=minbase) with Debian's Python 3.11 and venv, imported into podman or docker as a local image.
# tools/image_check.sh --standin builds the images on it (`--build-arg BASE=<this tag>`).
#
# How it differs from the real base: Python is Debian's 3.11.2 in /usr/bin (python:3.11-slim has its own 3.11.x
# build in /usr/local/bin); the Debian packages are today's bookworm, not those of the day the pinned base was built.
# The Dockerfiles' steps (apt pins, the hashed lock, the project, the non-root user) run unchanged on it.
#
# Usage: tools/standin_base.sh [--engine podman|docker] [--tag TAG] [--mirror URL] [--rebuild]
# Prints the image's tag as its last line on stdout; reuses an existing image of that tag unless --rebuild.
# Needs root (debootstrap) and about 400 MB of disk while bootstrapping; takes about a minute and a half.
set -euo pipefail

engine=${IMAGE_ENGINE:-}
tag=localhost/advtransfer-standin:bookworm-py3.11
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
rebuild=0

die() {
  echo "standin_base.sh: error: $1" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --engine) [ $# -ge 2 ] || die "--engine needs a value (podman or docker)"; engine=$2; shift 2 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag=$2; shift 2 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a URL"; mirror=$2; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1'; usage: tools/standin_base.sh [--engine podman|docker] [--tag TAG] [--mirror URL] [--rebuild]" ;;
  esac
done

if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman; elif command -v docker >/dev/null; then engine=docker; fi
fi
case "$engine" in
  podman | docker) command -v "$engine" >/dev/null || die "--engine $engine: $engine is not on PATH" ;;
  "") die "neither podman nor docker is on PATH (Debian/Ubuntu: apt-get install podman)" ;;
  *) die "--engine $engine: valid engines are podman and docker" ;;
esac

if [ "$rebuild" = 0 ] && "$engine" image inspect "$tag" >/dev/null 2>&1; then
  echo "standin_base.sh: reusing $tag (--rebuild makes it anew)" >&2
  echo "$tag"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap is not on PATH (Debian/Ubuntu: apt-get install debootstrap)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root; run as root (or with sudo)"

work=$(mktemp -d "${TMPDIR:-/tmp}/advtransfer-standin.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
echo "standin_base.sh: bootstrapping Debian bookworm from $mirror into $rootfs" >&2
debootstrap --variant=minbase --include=ca-certificates,python3.11,python3.11-venv,python3-venv \
  bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
# The three suites of a Debian image (debian:bookworm-slim has them in debian.sources): apt in the Dockerfiles must
# find the release versions it pins with the updates configured, as it will on the real base.
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
python=$(chroot "$rootfs" python3 --version 2>&1 || true)
tar -C "$rootfs" --numeric-owner -c . | "$engine" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "standin_base.sh: made $tag (Debian $(cat "$rootfs/etc/debian_version"), $python)" >&2
echo "$tag"
