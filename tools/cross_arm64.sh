#!/usr/bin/env bash
# Cross-builds Aether for aarch64 (ARM64) and runs its tests under qemu-user.
#   tools/cross_arm64.sh            libraries, tests, samples and benchmarks; every test under qemu,
#                                   the integration tests against nats-server processes on this host
#   tools/cross_arm64.sh --quick    the same build; only the unit tests (no nats-server) under qemu
#   tools/cross_arm64.sh --build    the build only
# Everything lands in build-arm64/ (override with AETHER_ARM64_BUILD): the arm64 sysroot is Debian's
# arm64 packages unpacked there, fetched with a private apt state, so nothing is installed system-wide
# beside the native packages (the cross compiler and qemu-user). On an arm64 board, build natively
# instead: tools/test.sh and bench/run.sh work there unchanged.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-full}"
case "$mode" in
  full | --quick | --build) ;;
  *) echo "usage: $0 [--quick|--build]" >&2; exit 2 ;;
esac
build="${AETHER_ARM64_BUILD:-$root/build-arm64}"
sysroot="$build/sysroot"

"$root/tools/install_deps.sh" g++-aarch64-linux-gnu qemu-user

# The arm64 sysroot, made once per build directory (and again when this list changes).
packages=(libnats-dev libnats3.4 libsimdjson-dev libsimdjson14 libfmt-dev libfmt9 libssl3 libssl-dev
          libprotobuf-c1 libprotobuf-c-dev libasio-dev doctest-dev libconcurrentqueue-dev)
stamp="$sysroot/.packages"
if [ "$(cat "$stamp" 2>/dev/null)" != "${packages[*]}" ]; then
  echo "== arm64 sysroot: ${packages[*]}" >&2
  apt_state="$build/apt"
  rm -rf "$sysroot" "$apt_state"
  mkdir -p "$apt_state/lists/partial" "$apt_state/cache/archives/partial" "$apt_state/debs" "$sysroot"
  apt_opts=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o "Dir::State::Lists=$apt_state/lists"
            -o "Dir::Cache=$apt_state/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_state/debs" && apt-get "${apt_opts[@]}" download -qq "${packages[@]/%/:arm64}")
  for deb in "$apt_state/debs"/*.deb; do dpkg -x "$deb" "$sysroot"; done
  # Debian's .so links are absolute (/usr/lib/...): point them into the sysroot.
  find "$sysroot" -type l -lname '/*' | while read -r link; do
    ln -sfn "$sysroot$(readlink "$link")" "$link"
  done
  echo "${packages[*]}" >"$stamp"
fi

# Child processes the tests start (nodes, writers) are aarch64 binaries too: the kernel hands them to
# qemu when binfmt_misc knows the format. Register it for this boot if it is not yet known.
binfmt=/proc/sys/fs/binfmt_misc
if [ "$mode" = "full" ] && [ "$(uname -m)" != "aarch64" ] && [ ! -e "$binfmt/qemu-aarch64" ]; then
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  # ELF, 64-bit, little endian, executable or shared object, machine 183 (aarch64).
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:' \
    >"$binfmt/register"
fi
# qemu finds the aarch64 C library (and its loader) here, for children started through binfmt_misc.
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

echo "== aarch64 build" >&2
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
  -DAETHER_ARM64_SYSROOT="$sysroot" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAETHER_ENABLE_WERROR=ON \
  -DAETHER_ENABLE_SAMPLES=ON -DAETHER_ENABLE_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
file "$build/tests/runtime/json_test" | grep -q 'ARM aarch64' || { echo "not an aarch64 build" >&2; exit 1; }
[ "$mode" = "--build" ] && exit 0

echo "== aarch64 tests under qemu-user" >&2
labels=()
# Unit tests: the runtime and actor tests, which need no nats-server.
[ "$mode" = "--quick" ] && labels=(-L '^(runtime|actors)$')
# Per-test limits are longer in a cross build (tests/CMakeLists.txt).
(cd "$build" && ctest -j "$(nproc)" --output-on-failure "${labels[@]}")
