#!/usr/bin/env bash
# Installs the Debian packages Aether needs to build, test and run, when any
# is missing. Extra package names may be passed (e.g. libcaf-dev for bench/).
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config clang-format libasio-dev libnats-dev libsimdjson-dev libfmt-dev doctest-dev
          libconcurrentqueue-dev nats-server faketime prometheus "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The JavaScript client the interoperability test uses (tests/js, project-local).
"$(dirname "${BASH_SOURCE[0]}")/install_js_deps.sh"
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
