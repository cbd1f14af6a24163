#!/usr/bin/env bash
# advtransfer's container entrypoint; it works the same from a checkout outside Docker:
#   docker/entrypoint.sh reproduce-all --profile demo    ->  make reproduce-all PROFILE=demo
# Its commands are the Makefile's targets, so an experiment has one definition inside and outside the container.
# In the images make finds the venv preinstalled (VENV=/opt/venv) and writes to OUT=/results; outside, the first
# command creates .venv. ADVTRANSFER_ENTRYPOINT_DRY_RUN=1 prints the command instead of running it.
set -euo pipefail

commands="reproduce-all exp1 exp2 figures demo test advtransfer help"

usage() {
  cat <<EOF
usage: docker/entrypoint.sh COMMAND [ARGS...]

commands (the Makefile's targets; ARGS go to the advtransfer CLI):
  reproduce-all [--profile demo|paper] [ARGS]  every experiment of the profile, then figures and the report
                                               (make reproduce-all; profile paper by default, it downloads data)
  exp1 [ARGS]                                  study 1 at paper scale (make exp1)
  exp2 [ARGS]                                  study 2 at paper scale (make exp2)
  demo [ARGS]                                  both studies' demo profiles on built-in tiny data (make demo)
  figures                                      rebuild results.csv and figures of every results folder (make figures)
  test [PYTEST ARGS]                           the test suite (pytest in the image, make test outside)
  advtransfer ARGS...                          the advtransfer CLI itself, e.g. advtransfer data check exp1 --profile paper
  help                                         this message

volumes in the images: /data (ADVTRANSFER_DATA), /cache/torch (TORCH_HOME), /results (OUT)
EOF
}

# Print the command (dry run) or replace this shell with it.
run() {
  if [ "${ADVTRANSFER_ENTRYPOINT_DRY_RUN:-0}" = 1 ]; then
    printf '%q' "$1"
    shift
    printf ' %q' "$@"
    printf '\n'
  else
    exec "$@"
  fi
}

die() {
  echo "docker/entrypoint.sh: $1" >&2
  exit 2
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cmd="${1:-help}"
[ $# -gt 0 ] && shift

case "$cmd" in
  help | -h | --help)
    usage
    ;;
  reproduce-all | exp1 | exp2 | demo)
    make_vars=()
    args=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --profile | --profile=*)
          [ "$cmd" = reproduce-all ] || die "--profile is only for reproduce-all ($cmd has a fixed profile)"
          if [ "$1" = --profile ]; then
            [ $# -ge 2 ] || die "--profile needs a value (demo or paper)"
            make_vars+=("PROFILE=$2")
            shift 2
          else
            make_vars+=("PROFILE=${1#--profile=}")
            shift
          fi
          ;;
        *)
          args+=("$1")
          shift
          ;;
      esac
    done
    if [ ${#args[@]} -gt 0 ]; then
      quoted="$(printf '%q ' "${args[@]}")"
      make_vars+=("ARGS=${quoted% }")
    fi
    run make "$cmd" "${make_vars[@]}"
    ;;
  figures)
    [ $# -eq 0 ] || die "figures takes no arguments (it rebuilds every results folder under \$OUT)"
    run make figures
    ;;
  test)
    if [ "${ADVTRANSFER_IN_IMAGE:-0}" = 1 ]; then
      # The image has the test tools in its venv (requirements/test-lock.txt); make test would build nox venvs.
      [ $# -gt 0 ] || set -- -q
      run python -m pytest -p no:cacheprovider "$@"
    else
      [ $# -eq 0 ] || die "test takes no arguments outside the image (make test runs nox -s tests)"
      run make test
    fi
    ;;
  advtransfer)
    venv="${VENV:-.venv}"
    if [ "${ADVTRANSFER_ENTRYPOINT_DRY_RUN:-0}" != 1 ]; then
      make -q "$venv/bin/.installed" || make "$venv/bin/.installed" >&2
    fi
    run "$venv/bin/advtransfer" "$@"
    ;;
  *)
    die "unknown command '$cmd'; valid commands: $commands"
    ;;
esac
