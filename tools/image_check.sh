#!/usr/bin/env bash
# Build one of the images and check it from the outside, as a user would run it (`make image-check KIND=cpu|cuda`):
#   1. build docker/Dockerfile.cpu (cpu) or docker/Dockerfile (cuda) with docker (when its engine answers) or podman
#      (with --format docker: podman's default OCI format drops SHELL, and with it the RUN steps' pipefail);
#   2. inside it, as the image's own user (uid 10001), with /data, /cache/torch and /results mounted from fresh
#      temporary folders: `help`, the container and config tests, and `reproduce-all` on a profile of about a minute
#      of CPU (tests/fixtures/smoke_exp1.toml, profile smoke);
#   3. results.csv, the figures and report.html must appear in the mounted results folder, owned by uid 10001.
# Prints the build time and the image size; removes the image afterwards unless --keep.
#
# Without registry access (the development machines): --standin builds on a local stand-in base made from the
# Debian archive by tools/standin_base.sh (root, debootstrap), and --host-ca FILE mounts the host's CA bundle and a
# pip.conf pointing at it into the build (podman), for HTTPS through a proxy only the host trusts:
#   make image-check KIND=cpu IMAGE_CHECK_ARGS="--standin --host-ca /etc/ssl/certs/ca-certificates.crt"
#
# Usage: tools/image_check.sh [--kind cpu|cuda] [--engine docker|podman] [--base IMAGE | --standin]
#          [--host-ca FILE] [--build-arg K=V]... [--build-volume SRC:DST[:OPTS]]... [--run-arg ARG]... [--keep]
# --base IMAGE: `--build-arg BASE=IMAGE` (both Dockerfiles start `FROM ${BASE}`, default the pinned digest).
# --build-volume: a podman build mount (`podman build -v`); docker build has none (use --build-arg there).
# --run-arg: passed to every `run` (e.g. --run-arg=--gpus=all). IMAGE_ENGINE=podman|docker picks the engine too.
set -euo pipefail

kind=cpu
engine=${IMAGE_ENGINE:-}
base=
standin=0
keep=0
host_ca=
build_args=()
build_volumes=()
run_args=()
uid=10001  # the image's user (docker/Dockerfile*: useradd --uid 10001, USER 10001:10001)
experiment=/opt/advtransfer/tests/fixtures/smoke_exp1.toml  # in the image: COPY . . puts the checkout there

die() {
  echo "image-check: error: $1" >&2
  exit 2
}

need_value() {
  [ "$2" -ge 2 ] || die "$1 needs a value (tools/image_check.sh --help)"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --kind) need_value "$1" $#; kind=$2; shift 2 ;;
    --kind=*) kind=${1#--kind=}; shift ;;
    --engine) need_value "$1" $#; engine=$2; shift 2 ;;
    --base) need_value "$1" $#; base=$2; shift 2 ;;
    --standin) standin=1; shift ;;
    --host-ca) need_value "$1" $#; host_ca=$2; shift 2 ;;
    --build-arg) need_value "$1" $#; build_args+=(--build-arg "$2"); shift 2 ;;
    --build-volume) need_value "$1" $#; build_volumes+=(-v "$2"); shift 2 ;;
    --run-arg) need_value "$1" $#; run_args+=("$2"); shift 2 ;;
    --run-arg=*) run_args+=("${1#--run-arg=}"); shift ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (tools/image_check.sh --help lists the options)" ;;
  esac
done

case "$kind" in
  cpu) dockerfile=docker/Dockerfile.cpu ;;
  cuda) dockerfile=docker/Dockerfile ;;
  *) die "KIND=$kind; valid: cpu (docker/Dockerfile.cpu) or cuda (docker/Dockerfile)" ;;
esac
[ -z "$base" ] || [ "$standin" = 0 ] || die "--base and --standin both name the base; give one"
[ -z "$host_ca" ] || [ -r "$host_ca" ] || die "--host-ca $host_ca is not a readable file"

# The engine: docker only when its daemon answers (a docker client without an engine is common), else podman.
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
  elif command -v docker >/dev/null; then
    die "docker is on PATH but its engine does not answer (docker info failed) and podman is not on PATH; start the docker engine, or install podman (Debian/Ubuntu: apt-get install podman runc; Fedora: dnf install podman)"
  else
    die "neither docker nor podman is on PATH; install one: podman (Debian/Ubuntu: apt-get install podman runc; Fedora: dnf install podman) or docker (https://docs.docker.com/engine/install/)"
  fi
fi
case "$engine" in
  docker | podman) command -v "$engine" >/dev/null || die "--engine $engine: $engine is not on PATH" ;;
  *) die "--engine $engine; valid: docker or podman" ;;
esac
if [ "$engine" = docker ] && { [ ${#build_volumes[@]} -gt 0 ] || [ -n "$host_ca" ]; }; then
  die "--build-volume and --host-ca need podman (docker build has no build mounts); use --engine podman"
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/advtransfer-image-check.XXXXXX")
image=localhost/advtransfer:$kind-check
engine_args=()
build_engine_args=()
cleanup() {
  # The results belong to uid 10001; a non-root caller cannot delete them, the image's user can.
  if ! rm -rf "$work" 2>/dev/null && [ -d "$work" ]; then
    "$engine" run --rm "${engine_args[@]}" -v "$work:/work" --entrypoint rm "$image" -rf /work/data /work/cache \
      /work/results >/dev/null 2>&1 || true
    rm -rf "$work" || true
  fi
  if [ "$keep" = 0 ]; then "$engine" rmi "$image" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ "$engine" = podman ]; then
  # Explicit ulimits: podman's default (nofile 1048576) is above the hard limit of a process without
  # CAP_SYS_RESOURCE, and runc then refuses to start the container. nproc 32768 worked where the host's own did not.
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  engine_args+=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=32768:32768")
  build_engine_args+=(--format docker)
  if command -v selinuxenabled >/dev/null && selinuxenabled; then mount_opt=:z; fi
fi
mount_opt=${mount_opt:-}

if [ "$standin" = 1 ]; then
  base=$(bash tools/standin_base.sh --engine "$engine" | tail -1)
fi
[ -z "$base" ] || build_args+=(--build-arg "BASE=$base")
if [ -n "$host_ca" ]; then
  printf '[global]\ncert = /mnt/host-ca.crt\n' >"$work/pip.conf"
  build_volumes+=(-v "$(realpath "$host_ca"):/mnt/host-ca.crt:ro" -v "$work/pip.conf:/etc/pip.conf:ro")
fi

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
echo "image-check: building $image from $dockerfile with $engine${base:+ on $base}" >&2
t0=$SECONDS
"$engine" build "${build_engine_args[@]}" "${engine_args[@]}" "${build_volumes[@]}" "${build_args[@]}" \
  --build-arg "GIT_COMMIT=$commit" -f "$dockerfile" -t "$image" . >&2 \
  || die "$engine build -f $dockerfile failed (its output is above)"
build_seconds=$((SECONDS - t0))
size=$("$engine" image inspect --format '{{.Size}}' "$image")
echo "image-check: built in ${build_seconds}s, $(awk -v b="$size" 'BEGIN {printf "%.2f GB", b / 1e9}')" >&2

mkdir -p "$work/data" "$work/cache" "$work/results"
if [ "$(id -u)" = 0 ]; then chown "$uid:$uid" "$work/data" "$work/cache" "$work/results"; else
  chmod 0777 "$work/data" "$work/cache" "$work/results"; fi
volumes=(-v "$work/data:/data$mount_opt" -v "$work/cache:/cache/torch$mount_opt" -v "$work/results:/results$mount_opt")
run() {
  "$engine" run --rm "${engine_args[@]}" "${run_args[@]}" "${volumes[@]}" "$image" "$@"
}

# As the image's own user: no --user, so this checks USER in the Dockerfile.
user=$("$engine" run --rm "${engine_args[@]}" --entrypoint id "$image" -u)
[ "$user" = "$uid" ] || die "the image runs as uid $user, expected $uid (USER in $dockerfile)"
usage=$(run help) || die "'help' failed in $image"
[[ "$usage" == "usage: docker/entrypoint.sh"* ]] || die "'help' did not print the entrypoint's usage"
echo "image-check: help ok, runs as uid $user" >&2
run test -q tests/test_container.py tests/test_config.py >&2 || die "the container and config tests failed in $image"
echo "image-check: tests ok" >&2
t0=$SECONDS
run reproduce-all --profile smoke --experiments "$experiment" --device cpu >&2 \
  || die "reproduce-all --profile smoke failed in $image (output above)"
smoke_seconds=$((SECONDS - t0))

# What a user finds in the mounted results folder, and who owns it (rootless podman maps uids: ask inside its
# user namespace).
owner() {
  if [ "$engine" = podman ] && [ "$(podman info --format '{{.Host.Security.Rootless}}')" = true ]; then
    podman unshare stat -c %u "$1"
  else
    stat -c %u "$1"
  fi
}
out=$work/results/smoke
for f in "$out/results.csv" "$out/report.html" "$out/report.md"; do
  [ -s "$f" ] || die "reproduce-all wrote no ${f#"$work/"} into the mounted results folder"
  [ "$(owner "$f")" = "$uid" ] || die "${f#"$work/"} is owned by uid $(owner "$f"), expected $uid"
done
figures=$(find "$out/figures" -name '*.png' 2>/dev/null | wc -l)
[ "$figures" -gt 0 ] || die "reproduce-all wrote no figures into results/smoke/figures"
echo "image-check: ok: $kind image built in ${build_seconds}s ($(awk -v b="$size" 'BEGIN {printf "%.2f GB", b / 1e9}'),\
 $engine${base:+, base $base}); help, tests and reproduce-all --profile smoke (${smoke_seconds}s: results.csv,\
 $figures figures, report.html, owned by uid $uid) passed"
