#!/usr/bin/env bash
# Benchmark driver.
#
#   bench/run.sh local [--scale F]
#
# local: builds and runs Aether's and CAF's local benchmarks (Release build in
# build-bench/), collects their JSON lines in build-bench/local.jsonl and
# prints a side-by-side table.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
build_dir="$repo_root/build-bench"

usage() {
  echo "usage: $0 local [--scale F]" >&2
  exit 2
}

# Installs the given Debian packages that are not installed yet.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' \
      || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  echo "installing: ${missing[*]}" >&2
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

# Configures the Release benchmark build and builds the given targets (build
# output goes to stderr, so stdout carries only results).
build_targets() {
  cmake -S "$repo_root" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DAETHER_ENABLE_BENCH=ON -DAETHER_ENABLE_CAF_BENCH=ON >&2
  cmake --build "$build_dir" --target "$@" >&2
}

# Reads flat JSON result lines (string and number values only) and prints one
# row per (bench, params, metric) comparing the aether and caf values.
compare_table() {
  awk '
    function fmt(v) { return (v == "") ? "-" : sprintf("%.4g", v) }
    /^[[:space:]]*\{/ {
      line = $0
      sub(/^[[:space:]]*\{/, "", line)
      sub(/\}[[:space:]]*$/, "", line)
      n = split(line, fields, ",")
      bench = impl = metric = value = params = ""
      for (i = 1; i <= n; i++) {
        f = fields[i]
        key = f; sub(/^[[:space:]]*"/, "", key); sub(/".*$/, "", key)
        val = f; sub(/^[^:]*:[[:space:]]*/, "", val); gsub(/"/, "", val)
        gsub(/[[:space:]]+$/, "", val)
        if (key == "bench") bench = val
        else if (key == "impl") impl = val
        else if (key == "metric") metric = val
        else if (key == "value") value = val
        else if (key != "unit") params = params (params == "" ? "" : " ") key "=" val
      }
      row = bench SUBSEP params SUBSEP metric
      if (!(row in seen)) { seen[row] = 1; order[++rows] = row }
      result[row, impl] = value
    }
    END {
      nr = 0
      cell[nr, 1] = "bench"; cell[nr, 2] = "params"; cell[nr, 3] = "metric"
      cell[nr, 4] = "aether"; cell[nr, 5] = "caf"; cell[nr, 6] = "aether/caf"
      cell[nr, 7] = "better"
      for (r = 1; r <= rows; r++) {
        split(order[r], k, SUBSEP)
        a = ((order[r], "aether") in result) ? result[order[r], "aether"] : ""
        c = ((order[r], "caf") in result) ? result[order[r], "caf"] : ""
        ratio = "-"; better = "-"
        if (a != "" && c != "") {
          if (c + 0 != 0) ratio = sprintf("%.3f", a / c)
          higher_is_better = (k[3] == "msg_per_s")
          if (a + 0 == c + 0) better = "tie"
          else if ((a + 0 > c + 0) == higher_is_better) better = "aether"
          else better = "caf"
        }
        nr++
        cell[nr, 1] = k[1]; cell[nr, 2] = k[2]; cell[nr, 3] = k[3]
        cell[nr, 4] = fmt(a); cell[nr, 5] = fmt(c); cell[nr, 6] = ratio
        cell[nr, 7] = better
      }
      for (j = 1; j <= 7; j++) {
        width[j] = 0
        for (r = 0; r <= nr; r++)
          if (length(cell[r, j]) > width[j]) width[j] = length(cell[r, j])
      }
      for (r = 0; r <= nr; r++) {
        out = ""
        for (j = 1; j <= 7; j++) {
          pad = (j >= 4 && j <= 6) ? "%" width[j] "s" : "%-" width[j] "s"
          out = out (j > 1 ? "  " : "") sprintf(pad, cell[r, j])
        }
        sub(/[[:space:]]+$/, "", out)
        print out
      }
    }
  ' "$@"
}

run_local() {
  local args=()
  while (($#)); do
    case "$1" in
      --scale)
        [[ $# -ge 2 && $2 =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || usage
        args+=(--scale "$2")
        shift 2
        ;;
      *) usage ;;
    esac
  done

  ensure_packages cmake ninja-build g++ libcaf-dev libasio-dev libnats-dev \
    libsimdjson-dev libfmt-dev doctest-dev libconcurrentqueue-dev
  build_targets aether_local_bench caf_local_bench

  local results="$build_dir/local.jsonl"
  : >"$results"
  local exe
  for exe in bench/aether_local_bench bench/caf/caf_local_bench; do
    echo "== running $exe ${args[*]}" >&2
    "$build_dir/$exe" "${args[@]}" | tee -a "$results"
  done
  echo
  compare_table "$results"
}

(($# >= 1)) || usage
suite=$1
shift
case "$suite" in
  local) run_local "$@" ;;
  *) usage ;;
esac
