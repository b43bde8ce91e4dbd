#!/usr/bin/env bash
# What the build needs from the system, beyond what scripts/tools.sh installs:
# a C toolchain, cmake and the libcurl headers (librdkafka is built from
# source), Python 3 with venv (for the pinned Python tools), and shellcheck
# (the chart test checks the shell scripts with it).
#
#   scripts/prerequisites.sh          install what is missing with apt when this user may
#                                     (root, or sudo without a password); otherwise say
#                                     what is missing and how to install it, and fail
#   scripts/prerequisites.sh check    only check; never install
#
# `make demo`, `make test` and `make bench` run the first form, so a fresh
# Debian or Ubuntu machine needs no third command.
set -euo pipefail

mode="${1:-ensure}"
case "$mode" in
  ensure | check) ;;
  install) mode=ensure ;; # the old name of the default
  *) echo "usage: scripts/prerequisites.sh [check]" >&2; exit 2 ;;
esac

packages=()
reasons=()
need() { packages+=("$1"); reasons+=("$1: $2"); }

command -v cargo >/dev/null || { echo "error: Rust is needed: install it from https://rustup.rs" >&2; exit 1; }
command -v cc >/dev/null || need build-essential "a C compiler, to build librdkafka from source"
command -v cmake >/dev/null || need cmake "librdkafka is built with cmake (rdkafka's cmake-build feature)"
command -v curl >/dev/null || need curl "make demo and the tool installs fetch over HTTP with it"
# A here-string, not a pipe: with pipefail, a cc that exits before reading
# its input would fail the echo with SIGPIPE and report headers missing.
cc -E - <<<'#include <curl/curl.h>' >/dev/null 2>&1 \
  || need libcurl4-openssl-dev "librdkafka's build needs the libcurl headers"
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || need python3-venv "moto server and kubernetes-validate run in virtualenvs"
command -v shellcheck >/dev/null || need shellcheck "make test checks the shell scripts with it"

if [[ ${#packages[@]} -eq 0 ]]; then
  exit 0
fi

refuse() {
  echo "error: missing system packages: ${packages[*]}" >&2
  [[ -n "${1:-}" ]] && echo "       ($1)" >&2
  echo "       install them with: sudo apt-get install ${packages[*]}" >&2
  exit 1
}

[[ "$mode" == check ]] && refuse
command -v apt-get >/dev/null || refuse "no apt-get here: use your system's package manager"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
    refuse "not root, and sudo needs a password, so they are not installed for you"
  fi
  sudo=(sudo -n)
fi

echo "==> installing missing system packages with apt-get:" >&2
printf '      %s\n' "${reasons[@]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "==> installed: ${packages[*]}" >&2
