#!/usr/bin/env bash
# Benchmark driver.
#
#   bench/run.sh local [--scale F]
#   bench/run.sh persistence [--scale F] [--only append|replay|activation]
#   bench/run.sh bus [--scale F] [--only local|cross_node]
#
# local: builds and runs Aether's and CAF's local benchmarks (Release build in
# build-bench/), collects their JSON lines in build-bench/local.jsonl and
# prints a side-by-side table.
#
# persistence: builds aether_persistence_bench, starts a nats-server with
# JetStream on a free loopback port and a temporary store (removed on exit),
# runs Aether's JetStream event store beside raw nats.c against it, collects
# the JSON lines in build-bench/persistence.jsonl and prints a table and the
# project's persistence goals.
#
# bus: builds aether_bus_bench, starts a nats-server the same way, runs the
# local event bus alone and the NATS bus between two nodes (two connections
# to that server) beside raw nats.c pub/sub between the same connections,
# collects the JSON lines in build-bench/bus.jsonl and prints a table and the
# project's event-bus goal.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
build_dir="$repo_root/build-bench"

usage() {
  echo "usage: $0 local [--scale F]" >&2
  echo "       $0 persistence [--scale F] [--only append|replay|activation]" >&2
  echo "       $0 bus [--scale F] [--only local|cross_node]" >&2
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
# output goes to stderr, so stdout carries only results). Extra -D options
# come first, separated from the targets by "--".
build_targets() {
  local defs=()
  while (($#)) && [[ $1 != -- ]]; do
    defs+=("$1")
    shift
  done
  (($#)) && shift
  cmake -S "$repo_root" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DAETHER_ENABLE_BENCH=ON "${defs[@]}" >&2
  cmake --build "$build_dir" --target "$@" >&2
}

# compare_table PEER FILE...
# Reads flat JSON result lines (string and number values only) and prints one
# row per (bench, params, metric) comparing the aether and PEER values; a row
# that only one of them has shows that value alone. Metrics ending in _per_s
# are better when higher, all others when lower.
compare_table() {
  local peer=$1
  shift
  awk -v peer="$peer" '
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
      cell[nr, 4] = "aether"; cell[nr, 5] = peer; cell[nr, 6] = "aether/" peer
      cell[nr, 7] = "better"
      for (r = 1; r <= rows; r++) {
        split(order[r], k, SUBSEP)
        a = ((order[r], "aether") in result) ? result[order[r], "aether"] : ""
        c = ((order[r], peer) in result) ? result[order[r], peer] : ""
        ratio = "-"; better = "-"
        if (a != "" && c != "") {
          if (c + 0 != 0) ratio = sprintf("%.3f", a / c)
          higher_is_better = (k[3] ~ /_per_s$/)
          if (a + 0 == c + 0) better = "tie"
          else if ((a + 0 > c + 0) == higher_is_better) better = "aether"
          else better = peer
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

# Reads a suite's options into `args` (for the program) and `only`:
# --scale F, and --only NAME where NAME matches the given pattern (empty: no
# --only for this suite).
parse_options() {
  local only_pattern="$1"
  shift
  args=()
  only=""
  while (($#)); do
    case "$1" in
      --scale)
        [[ $# -ge 2 && $2 =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || usage
        args+=(--scale "$2")
        shift 2
        ;;
      --only)
        [[ -n $only_pattern && $# -ge 2 && $2 =~ ^($only_pattern)$ ]] || usage
        only=$2
        args+=(--only "$2")
        shift 2
        ;;
      *) usage ;;
    esac
  done
}

# An awk function reading a field of a flat JSON line, for the goal checks.
awk_field='
    function field(line, key,   m) {
      if (match(line, "\"" key "\":(\"[^\"]*\"|[^,}]*)")) {
        m = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
        gsub(/"/, "", m)
        return m
      }
      return ""
    }'

run_local() {
  local args only
  parse_options "" "$@"

  ensure_packages cmake ninja-build g++ libcaf-dev libasio-dev libnats-dev \
    libsimdjson-dev libfmt-dev doctest-dev libconcurrentqueue-dev
  build_targets -DAETHER_ENABLE_CAF_BENCH=ON -- aether_local_bench caf_local_bench

  local results="$build_dir/local.jsonl"
  : >"$results"
  local exe
  for exe in bench/aether_local_bench bench/caf/caf_local_bench; do
    echo "== running $exe ${args[*]}" >&2
    "$build_dir/$exe" "${args[@]}" | tee -a "$results"
  done
  echo
  compare_table caf "$results"
}

# Prints the persistence goals of the project brief, checked against the
# results in the given file.
persistence_goals() {
  awk "$awk_field"'
    /^[[:space:]]*\{/ {
      b = field($0, "bench"); i = field($0, "impl"); m = field($0, "metric"); v = field($0, "value") + 0
      if (b == "append" && m == "events_per_s") {
        if (i == "aether") fenced[field($0, "actors")] = v
        else if (field($0, "mode") == "async") raw_async[field($0, "window")] = v
      } else if (b == "replay" && m == "events_per_s") {
        key = field($0, "events") " events, " field($0, "events_per_msg") " per message"
        if (!(key in seen)) { seen[key] = 1; keys[++nkeys] = key }
        replay[key, i] = v
      } else if (b == "activation" && m == "activation_ms") {
        activation[field($0, "snapshot")] = v
        activation_events = field($0, "events")
      }
    }
    function verdict(ok) { return ok ? "met" : "MISSED" }
    END {
      print "goals:"
      for (w in raw_async) {
        if (!(w in fenced)) continue
        r = fenced[w] / raw_async[w]
        printf "  fenced appends (%s actors) / raw async publish (window %s) = %.3f (goal >= 0.75): %s\n",
               w, w, r, verdict(r >= 0.75)
      }
      for (k = 1; k <= nkeys; k++) {
        key = keys[k]
        if (!((key, "aether") in replay) || !((key, "nats.c") in replay)) continue
        r = replay[key, "aether"] / replay[key, "nats.c"]
        printf "  replay (%s) / raw ordered consumer = %.3f (goal >= 0.8): %s\n", key, r, verdict(r >= 0.8)
      }
      if ("0" in activation)
        printf "  activation of %s events without a snapshot: %.3g ms (goal < 50 ms): %s\n",
               activation_events, activation["0"], verdict(activation["0"] + 0 < 50)
      if ("1" in activation)
        printf "  activation of %s events with a snapshot: %.3g ms (goal < 2 ms): %s\n",
               activation_events, activation["1"], verdict(activation["1"] + 0 < 2)
    }
  ' "$@"
}

# Starts a nats-server of our own with JetStream: a port the kernel picks
# (-p -1), read back from its log, and a store that goes away with it (see
# stop_server). Sets `url`.
start_server() {
  server_dir=$(mktemp -d "${TMPDIR:-/tmp}/aether-bench-nats.XXXXXX")
  server_pid=
  trap 'stop_server' EXIT
  trap 'exit 130' INT TERM
  nats-server -js -a 127.0.0.1 -p -1 -sd "$server_dir/store" >"$server_dir/log" 2>&1 &
  server_pid=$!
  url=""
  local _
  for _ in $(seq 100); do
    url=$(sed -n 's/.*Listening for client connections on \([0-9.]*:[0-9]*\).*/nats:\/\/\1/p' \
      "$server_dir/log" | head -n 1)
    [[ -n $url ]] && grep -q 'Server is ready' "$server_dir/log" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $url ]] || ! grep -q 'Server is ready' "$server_dir/log"; then
    echo "nats-server did not start:" >&2
    cat "$server_dir/log" >&2
    exit 1
  fi
  echo "== nats-server $(nats-server --version) on $url" >&2
}

run_persistence() {
  local args only
  parse_options "append|replay|activation" "$@"

  "$repo_root/tools/install_deps.sh"
  build_targets -- aether_persistence_bench

  start_server

  local results="$build_dir/persistence.jsonl"
  : >"$results"
  echo "== running bench/aether_persistence_bench ${args[*]}" >&2
  "$build_dir/bench/aether_persistence_bench" --url "$url" "${args[@]}" | tee -a "$results"
  echo
  compare_table nats.c "$results"
  echo
  persistence_goals "$results"
}

# Prints the event-bus goal of the project brief, checked against the results
# in the given file: cross-node p50 latency within 1.5x raw nats.c pub/sub.
bus_goals() {
  awk "$awk_field"'
    /^[[:space:]]*\{/ {
      if (field($0, "bench") != "cross_node" || field($0, "mode") != "latency" || field($0, "metric") != "p50_us") next
      asap = field($0, "send_asap")
      if (!(asap in seen)) { seen[asap] = 1; modes[++nmodes] = asap }
      p50[asap, field($0, "impl")] = field($0, "value") + 0
    }
    function verdict(ok) { return ok ? "met" : "MISSED" }
    END {
      print "goals:"
      for (k = 1; k <= nmodes; k++) {
        a = modes[k]
        if (!((a, "aether") in p50) || !((a, "nats.c") in p50) || p50[a, "nats.c"] == 0) continue
        r = p50[a, "aether"] / p50[a, "nats.c"]
        printf "  cross-node p50 latency (send_asap=%s): aether %.4g us / raw nats.c %.4g us = %.3f (goal <= 1.5): %s\n",
               a, p50[a, "aether"], p50[a, "nats.c"], r, verdict(r <= 1.5)
      }
    }
  ' "$@"
}

run_bus() {
  local args only
  parse_options "local|cross_node" "$@"

  "$repo_root/tools/install_deps.sh"
  build_targets -- aether_bus_bench

  # The local bus needs no server.
  if [[ $only != local ]]; then
    start_server
    args+=(--url "$url")
  fi

  local results="$build_dir/bus.jsonl"
  : >"$results"
  echo "== running bench/aether_bus_bench ${args[*]}" >&2
  "$build_dir/bench/aether_bus_bench" "${args[@]}" | tee -a "$results"
  echo
  compare_table nats.c "$results"
  echo
  bus_goals "$results"
}

# Stops the server started by start_server and removes its store.
stop_server() {
  if [[ -n ${server_pid:-} ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [[ -n ${server_dir:-} ]] && rm -rf "$server_dir"
  return 0
}

(($# >= 1)) || usage
suite=$1
shift
case "$suite" in
  local) run_local "$@" ;;
  persistence) run_persistence "$@" ;;
  bus) run_bus "$@" ;;
  *) usage ;;
esac
