#!/usr/bin/env bash
# Builds the JSON decoder's libFuzzer target with clang (ASan+UBSan) in build-fuzz and runs it for
# FUZZ_SECONDS (default 60) on build-fuzz/corpus/json, seeded from tests/fuzz/corpus/json. A crash leaves
# its input in build-fuzz/ and exits non-zero.
#   tools/fuzz.sh                 one minute
#   FUZZ_SECONDS=600 tools/fuzz.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# libclang-rt-dev holds the libFuzzer and sanitizer runtimes; clang only recommends it.
"$root/tools/install_deps.sh" clang libclang-rt-dev

build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAETHER_ENABLE_FUZZ=ON -DAETHER_ENABLE_TESTS=OFF -DAETHER_ENABLE_SAMPLES=OFF >/dev/null
cmake --build "$build" --target json_fuzz

corpus="$build/corpus/json"
mkdir -p "$corpus"
cp "$root"/tests/fuzz/corpus/json/* "$corpus"/
cd "$build"
./tests/fuzz/json_fuzz -max_total_time="${FUZZ_SECONDS:-60}" -print_final_stats=1 "$corpus"
