#!/usr/bin/env bash
# Sets everything up and runs every test suite: a warnings-as-errors build,
# then the same tests under ASan+UBSan and under TSan, and an aarch64 cross build
# whose unit tests run under qemu-user.
#   tools/test.sh            all four
#   tools/test.sh --quick    the plain build only
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
"$root/tools/install_deps.sh"

jobs="$(nproc)"

echo "== format" >&2
(cd "$root" && git ls-files '*.cpp' '*.hpp' | grep -v '^bench/caf/' | xargs clang-format --dry-run --Werror)

run_suite() { # name, build dir, ctest exclude regex, extra cmake arguments...
  local name="$1" dir="$2" exclude="$3"
  shift 3
  echo "== $name" >&2
  cmake -S "$root" -B "$dir" -G Ninja -DAETHER_ENABLE_WERROR=ON -DAETHER_ENABLE_SAMPLES=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  cmake --build "$dir" -j "$jobs" --target aether_check_headers # every public header on its own
  (cd "$dir" && ctest -j "$jobs" --output-on-failure --timeout 300 ${exclude:+-E "$exclude"})
}

run_suite "tests" "$root/build-test" "" -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "$quick" -eq 0 ]; then
  # The install check builds an unsanitized consumer: not repeated here.
  run_suite "tests under ASan+UBSan" "$root/build-asan" install -DCMAKE_BUILD_TYPE=Debug \
    -DAETHER_SANITIZERS=address,undefined
  # aarch64: the cross build, and the unit tests under qemu-user (the full emulated run is
  # tools/cross_arm64.sh without --quick).
  if [ "$(uname -m)" != "aarch64" ]; then # on an arm64 host the suites above are native already
    echo "== aarch64 build, unit tests under qemu-user" >&2
    "$root/tools/cross_arm64.sh" --quick
  fi
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tools/tsan.supp" \
    run_suite "tests under TSan" "$root/build-tsan" 'install' -DCMAKE_BUILD_TYPE=Debug -DAETHER_SANITIZERS=thread
fi
