#!/usr/bin/env bash
# What the build needs from the system, beyond what scripts/tools.sh installs:
# a C toolchain, cmake and the libcurl headers (librdkafka is built from
# source), Python 3 with venv (for the pinned Python tools), and shellcheck
# (the chart test checks the shell scripts with it).
#
#   scripts/prerequisites.sh          check; say what is missing and how to install it
#   scripts/prerequisites.sh install  install what is missing with apt (CI, fresh machines)
set -euo pipefail

packages=()
command -v cargo >/dev/null || { echo "error: Rust is needed: install it from https://rustup.rs" >&2; exit 1; }
command -v cc >/dev/null || packages+=(build-essential)
command -v cmake >/dev/null || packages+=(cmake)
command -v curl >/dev/null || packages+=(curl)
echo '#include <curl/curl.h>' | cc -E - >/dev/null 2>&1 || packages+=(libcurl4-openssl-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
command -v shellcheck >/dev/null || packages+=(shellcheck)

if [[ ${#packages[@]} -eq 0 ]]; then
  exit 0
fi

if [[ "${1:-check}" != install ]]; then
  echo "error: missing system packages: ${packages[*]}" >&2
  echo "       install them with: sudo apt-get install ${packages[*]}   (or: scripts/prerequisites.sh install)" >&2
  exit 1
fi

command -v apt-get >/dev/null || { echo "error: install ${packages[*]} with your package manager" >&2; exit 1; }
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "==> installing system packages: ${packages[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
