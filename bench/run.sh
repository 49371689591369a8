#!/usr/bin/env bash
# Benchmark driver.
#
#   bench/run.sh local       [--runs N] [--quick] [--scale F]
#                            [--only ping_pong|contention|activate|skynet|savina] [--against REV]
#   bench/run.sh persistence [--runs N] [--quick] [--scale F] [--only append|replay|activation|conflict|growth]
#                            [--growth-writes N]
#   bench/run.sh bus         [--runs N] [--quick] [--scale F] [--only local|cross_node]
#   bench/run.sh cluster     [--runs N] [--quick] [--scale F] [--only assignment|election|heartbeat|remote_ask|
#                            remote_tell|cluster_failover|rolling_restart|cluster_scaling]
#
# --plot (any suite): also draws the table's aether/peer ratios with gnuplot
# into build-bench/<suite>.svg (gnuplot-nox is installed when missing).
#
# --arm64 (any suite): builds the suite for aarch64 (tools/cross_arm64.sh) and
# runs its programs under qemu-user on this machine, beside its nats-server.
# Those figures are marked emulated: they check that the programs run, and say
# nothing of a board's speed. On an arm64 board, run bench/run.sh as it is.
#
# Method. A suite is a list of workloads; each workload has Aether's side and
# its peers' sides (another runtime, raw nats.c, or a floor: the same work
# without the layer under test). Every side of every workload runs in a
# fresh process. The suite makes one warm-up round (results dropped), then
# --runs rounds (default 5); within a round the sides of a workload take
# turns, in the opposite order every other round. Each result is reported
# as median and spread (min-max) over the rounds; a ratio is called a win or
# a loss only when the two ranges (3 runs or more each) do not overlap, and
# a goal is met or missed only when the whole range is on one side of it. --quick: one round, no
# warm-up, scale 0.1 unless --scale says otherwise (a smoke test, not a
# measurement).
#
# Output: build-bench/<suite>.raw.jsonl (every line of every run, with its
# round and the load average when it started), build-bench/<suite>.jsonl
# (one line per result: median, min, max, the runs and their load averages,
# the machine and the versions), then a table pairing each Aether row with
# its peers' rows by their shared `case` key, and the goals.
#
# local: Aether beside CAF 0.17.6 (the only C++ actor framework Debian
# packages) and Erlang/OTP, at one worker thread and at all cores, with the
# executor and queue floors.
# persistence: a nats-server of our own; Aether's JetStream store beside raw
# nats.c sending the store's exact bytes, and plain publishes as the ceiling.
# bus: the local bus beside a post to an idle pool; the NATS bus beside raw
# nats.c pub/sub of messages of the same size.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
# AETHER_BENCH_BUILD_DIR: another build directory (several checkouts or builds on one machine).
build_dir="${AETHER_BENCH_BUILD_DIR:-$repo_root/build-bench}"

usage() {
  echo "usage: $0 local [--runs N] [--quick] [--scale F] [--only ping_pong|contention|activate|skynet|savina] [--against REV]" >&2
  echo "       $0 persistence [--runs N] [--quick] [--scale F] [--only append|replay|activation|conflict|growth]" >&2
  echo "                          [--growth-writes N]" >&2
  echo "       $0 bus [--runs N] [--quick] [--scale F] [--only local|cross_node]" >&2
  echo "       $0 cluster [--runs N] [--quick] [--scale F] [--only assignment|election|heartbeat|remote_ask|remote_tell|cluster_failover|rolling_restart|cluster_scaling]" >&2
  echo "       any suite: --arm64 to run its aarch64 build under qemu-user (emulated figures)" >&2
  echo "       any suite: --plot to draw the table with gnuplot into build-bench/<suite>.svg" >&2
  exit 2
}

# Installs what the benchmarks need besides the project's own dependencies
# (tools/install_deps.sh installs those and the extra packages it is given).
install_bench_deps() {
  "$repo_root/tools/install_deps.sh" jq "$@"
}

# Configures the Release benchmark build and builds the given targets (build
# output goes to stderr, so stdout carries only results). Extra -D options
# come first, separated from the targets by "--".
build_targets() {
  if ((arm64)); then
    # The cross build makes every target; build_dir is its build directory.
    "$repo_root/tools/cross_arm64.sh" --build >&2
    return
  fi
  local defs=()
  while (($#)) && [[ $1 != -- ]]; do
    defs+=("$1")
    shift
  done
  (($#)) && shift
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAETHER_ENABLE_BENCH=ON \
    "${launcher[@]}" "${defs[@]}" >&2
  cmake --build "$build_dir" --target "$@" >&2
}

# Reads a suite's options: --runs N, --quick, --scale F, and --only NAME
# where NAME matches the given pattern. Sets `runs`, `warmup`, `scale`, `only`.
parse_options() {
  local only_pattern="$1"
  shift
  runs=5
  warmup=1
  scale=""
  only=""
  local quick=0
  while (($#)); do
    case "$1" in
      --runs)
        [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage
        runs=$2
        shift 2
        ;;
      --quick)
        quick=1
        shift
        ;;
      --scale)
        [[ $# -ge 2 && $2 =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || usage
        scale=$2
        shift 2
        ;;
      --only)
        [[ -n $only_pattern && $# -ge 2 && $2 =~ ^($only_pattern)$ ]] || usage
        only=$2
        shift 2
        ;;
      *) usage ;;
    esac
  done
  if ((quick)); then
    runs=1
    warmup=0
    [[ -z $scale ]] && scale=0.1
  fi
  [[ -z $scale ]] && scale=1
  return 0
}

# -- the machine and the versions, recorded with every result.

machine_json() {
  local cpu
  # x86 names its model in /proc/cpuinfo; arm64 boards often only through lscpu.
  cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
  [[ -z $cpu ]] && cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1 || true)
  jq -cn --arg cpu "${cpu:-unknown}" --argjson cores "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg kernel "$(uname -r)" --arg arch "$( ((arm64)) && echo aarch64 || uname -m)" --argjson emulated "$arm64" \
    '{cpu: $cpu, cores: $cores, load_at_start: $load, kernel: $kernel, arch: $arch, emulated: ($emulated == 1)}'
}

versions_json() {
  local cxx compiler caf nats_c nats_server erlang
  cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
  compiler=$("${cxx:-c++}" --version 2>/dev/null | head -n 1 || true)
  caf=$(dpkg-query -W -f='${Version}' libcaf-dev 2>/dev/null || true)
  nats_c=$(dpkg-query -W -f='${Version}' libnats-dev 2>/dev/null || true)
  nats_server=$(nats-server --version 2>/dev/null || true)
  erlang=""
  if command -v erl >/dev/null; then
    erlang=$(erl -noshell -eval \
      'io:format("OTP ~s, erts ~s", [erlang:system_info(otp_release), erlang:system_info(version)]), halt().' \
      2>/dev/null || true)
  fi
  jq -cn --arg compiler "$compiler" --arg caf "$caf" --arg nats_c "$nats_c" --arg nats_server "$nats_server" \
    --arg erlang "$erlang" --arg aether "$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || true)" \
    '{compiler: $compiler, caf: $caf, "nats.c": $nats_c, nats_server: $nats_server, erlang: $erlang,
      aether_commit: $aether}'
}

# -- jobs: every side of every workload, run in rounds.

job_group=()
job_cmd=()

# add_job GROUP COMMAND...: one side of a workload; the sides of a group
# take turns within a round. The command prints result lines on stdout.
add_job() {
  local group=$1
  shift
  job_group+=("$group")
  job_cmd+=("$(printf '%q ' "$@")")
}

# Runs every job once per round (a warm-up round first unless --quick),
# appending its lines, stamped with the round, to RAW.
run_rounds() {
  local raw=$1
  : >"$raw"
  local groups=() g i
  for g in "${job_group[@]}"; do
    [[ " ${groups[*]} " == *" $g "* ]] || groups+=("$g")
  done
  local round first=$((1 - warmup))
  for ((round = first; round <= runs; round++)); do
    echo "== round $round of $runs$([[ $round -eq 0 ]] && echo ' (warm-up, dropped)')" >&2
    for g in "${groups[@]}"; do
      local members=()
      for i in "${!job_group[@]}"; do
        [[ ${job_group[$i]} == "$g" ]] && members+=("$i")
      done
      # Alternate which side goes first.
      if ((round % 2 == 1)); then
        local reversed=()
        for ((i = ${#members[@]} - 1; i >= 0; i--)); do reversed+=("${members[$i]}"); done
        members=("${reversed[@]}")
      fi
      for i in "${members[@]}"; do
        echo "   $g: ${job_cmd[$i]}" >&2
        local out load
        load=$(cut -d' ' -f1 /proc/loadavg)
        if ! out=$(eval "${job_cmd[$i]}"); then
          echo "failed: ${job_cmd[$i]}" >&2
          printf '%s\n' "$out" >&2
          return 1
        fi
        printf '%s\n' "$out" | grep '^{' |
          jq -c --argjson round "$round" --arg load "$load" '. + {round: $round, load: ($load | tonumber)}' >>"$raw"
      done
    done
  done
}

# Folds the raw lines into one line per (bench, case, impl, metric): median,
# min, max and every run, stamped with the machine and versions.
aggregate() {
  local raw=$1 out=$2 machine=$3 versions=$4
  jq -s -c --argjson machine "$machine" --argjson versions "$versions" '
    map(select(.round >= 1))
    | group_by([.bench, .case, .impl, .metric])
    | map((map(.value) | sort) as $v
          | (.[0] | del(.value, .round, .load)) + {
              median: (if ($v | length) % 2 == 1 then $v[($v | length - 1) / 2]
                       else ($v[($v | length) / 2 - 1] + $v[($v | length) / 2]) / 2 end),
              min: $v[0], max: $v[-1], runs: map(.value), load_per_run: map(.load),
              machine: $machine, versions: $versions})
    | .[]' "$raw" >"$out"
}

# The table's rows as JSON arrays: one per Aether result and peer result of
# the same case and metric. "better" names a side only when the ranges (of at
# least three runs each) do not overlap; "floor" rows show how far Aether is
# above the layer under it; results in units "count" and "bytes", and those
# marked "role":"explains", explain other rows and are never called wins or
# losses. The last three fields (the ratio's median, min and max, numbers or
# null) feed the plot and are not printed.
table_rows_filter='
  def fmt: if . == null then "-"
           elif (. | fabs) >= 1e6 then "\(. / 1e6 * 1000 | round / 1000)M"
           elif (. | fabs) >= 1e4 then "\(. / 1e3 * 10 | round / 10)k"
           elif (. | fabs) >= 100 then "\(. | round)"
           else "\(. * 1000 | round / 1000)" end;
  def cell: "\(.median | fmt) [\(.min | fmt)-\(.max | fmt)]";
  def aether: .impl == "aether" or (.impl | startswith("aether."));
  def info: .unit == "count" or .unit == "bytes" or .role == "explains";
  def higher: .metric | endswith("_per_s");
  group_by([.case, .metric])[]
  | (map(select(aether))) as $a | (map(select(aether | not))) as $p
  | $a[] as $x
  | if ($p | length) == 0 then [$x.case, $x.metric, $x.impl, ($x | cell), "-", "-", "-", "-", null, null, null]
    else $p[] as $y
    | (if $y.median != 0 then ($x.median / $y.median * 1000 | round / 1000 | tostring) else "-" end) as $ratio
    | (if ($x | info) then "-"
       elif ($y.impl | startswith("floor")) then "floor"
       elif ($x.runs | length) < 3 or ($y.runs | length) < 3 then "(too few runs)"
       elif $x.min > $y.max then (if ($x | higher) then "aether" else $y.impl end)
       elif $x.max < $y.min then (if ($x | higher) then $y.impl else "aether" end)
       else "overlap" end) as $better
    | [$x.case, $x.metric, $x.impl, ($x | cell), $y.impl, ($y | cell), $ratio, $better,
       (if $y.median != 0 and ($x | info | not) then $x.median / $y.median else null end),
       (if $y.max != 0 and ($x | info | not) then $x.min / $y.max else null end),
       (if $y.min != 0 and ($x | info | not) then $x.max / $y.min else null end)]
    end'

# Prints the table of a suite's results (build-bench/<suite>.jsonl), read and
# laid out by jq; with --plot also draws it (plot_table).
print_table() {
  local results=$1
  jq -r -s '
    [["case", "metric", "aether side", "median [min-max]", "peer", "median [min-max]", "aether/peer", "better"]]
    + [.[] | [('"$table_rows_filter"')] | .[] | .[0:8]]
    | (transpose | map(map(length) | max)) as $w
    | .[]
    | [range(0; length) as $j | .[$j] + (($w[$j] - (.[$j] | length)) as $n | if $n > 0 then " " * $n else "" end)]
    | join("  ") | sub("\\s+$"; "")' <(jq -s '.' "$results")
  ((plot)) && plot_table "$results"
  return 0
}

# --plot: draws each row's aether/peer ratio (median, with the range from
# the worst to the best pairing of the two sides' runs) beside the table, as
# an SVG next to the results file. Rows that are only explanations, or have
# no peer, are left out. gnuplot-nox is installed when missing.
plot_table() {
  local results=$1
  local base="${results%.jsonl}"
  local data="$base.plot.tsv" svg="$base.svg"
  command -v gnuplot >/dev/null || "$repo_root/tools/install_deps.sh" gnuplot-nox >&2
  jq -r -s '.[] | [('"$table_rows_filter"')] | .[] | select(.[8] != null)
            | ["\(.[0]) \(.[1]) vs \(.[4])", .[8], .[9], .[10]] | @tsv' <(jq -s '.' "$results") >"$data"
  if [[ ! -s $data ]]; then
    echo "plot: no row with a peer to draw"
    return 0
  fi
  local rows
  rows=$(wc -l <"$data")
  gnuplot <<GNUPLOT
set terminal svg size 1000,$((200 + 28 * rows)) dynamic font "sans,11"
set output "$svg"
set datafile separator "\t"
set title "$(basename "$base"): aether / peer (median, whiskers min-max); metrics per second: above 1 favours aether, times: below 1"
set style fill solid 0.5
set boxwidth 0.6
set xtics rotate by -35 noenhanced font "sans,9"
set bmargin 14
set rmargin 30
set logscale y 2
set grid ytics
set ylabel "aether / peer"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2
plot "$data" using 0:2:xtic(1) with boxes notitle, "" using 0:2:3:4 with yerrorbars pointtype 0 notitle
GNUPLOT
  echo "plot: $svg"
}

# goal_line LABEL VALUE_JSON: prints a goal checked on a result's range:
# met when the whole range meets it, missed when none of it does,
# "not settled" otherwise. VALUE_JSON: {median,min,max,goal,higher,unit}.
print_goals() {
  local results=$1 filter=$2
  echo "goals:"
  jq -r -s "$filter"'
    | .[]
    | (if .runs < 3 then "not settled (too few runs)"
       elif .higher then (if .min >= .goal then "met" elif .max < .goal then "MISSED" else "not settled (range straddles the goal)" end)
       else (if .max <= .goal then "met" elif .min > .goal then "MISSED" else "not settled (range straddles the goal)" end) end) as $v
    | "  \(.label): \(.median * 1000 | round / 1000)\(.unit) [\(.min * 1000 | round / 1000)-\(.max * 1000 | round / 1000)] (goal \(if .higher then ">=" else "<=" end) \(.goal)\(.unit)): \($v)\(if .note then "; " + .note else "" end)"
  ' "$results"
}

# A goal on the ratio of two results of the same case: the ratio of each
# round's pair of runs (the two sides ran in turn within a round), as
# median and min-max.
ratio_goals_filter='
  def stats: sort | {median: (if length % 2 == 1 then .[(length - 1) / 2] else (.[length / 2 - 1] + .[length / 2]) / 2 end),
                     min: .[0], max: .[-1], runs: length};
  def pick($c; $i; $m): map(select(.case == $c and .impl == $i and .metric == $m)) | first;
  def ratio($a; $b; $name; $goal; $note):
    if $a == null or $b == null then empty
    else ([range(0; [($a.runs | length), ($b.runs | length)] | min)] | map($a.runs[.] / $b.runs[.]) | stats)
         + {label: $name, goal: $goal, higher: true, unit: "x", note: $note} end;
'

finish_suite() {
  local suite=$1 raw=$2
  local results="$build_dir/$suite.jsonl"
  aggregate "$raw" "$results" "$machine" "$versions"
  echo
  echo "machine: $(jq -r '"\(.cpu), \(.cores) cores, load average at start \(.load_at_start)"' <<<"$machine")"
  echo "versions: $(jq -r 'to_entries | map("\(.key) \(.value)") | join("; ")' <<<"$versions")"
  echo "rounds: $runs$( ((warmup)) && echo ' after a warm-up round'), scale $scale"
  # Other work on the machine moves every figure: say so.
  jq -r 'if (.load_at_start | split(" ") | .[0] | tonumber) > .cores / 2
         then "warning: load average \(.load_at_start | split(" ") | .[0]) on \(.cores) cores at the start: other work shares the machine, figures are noisy"
         else empty end' <<<"$machine"
  [[ -n ${peers_note:-} ]] && echo "$peers_note"
  echo
  print_table "$results"
}

# -- local

# --against REV: Aether beside its own build of commit REV (checked out into a
# temporary git worktree, built there, removed afterwards) instead of its
# peers; rows of REV are "before.aether...", and each figure's goal is to stay
# within 5% of REV's, side by side in the same rounds.
against=""
against_dir=""

remove_against() {
  [[ -n $against_dir ]] && git -C "$repo_root" worktree remove --force "$against_dir" >&2 2>/dev/null
  against_dir=""
  return 0
}

# Builds REV's local benchmark in a temporary worktree; sets `against_exe`.
build_against() {
  against_dir=$(mktemp -d "${TMPDIR:-/tmp}/aether-against.XXXXXX")
  rmdir "$against_dir"
  trap 'remove_against' EXIT
  git -C "$repo_root" worktree add --detach "$against_dir" "$against" >&2
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Paths relative to the worktree in ccache's hashes: a later run's worktree (another temporary name) hits the cache.
  CCACHE_BASEDIR="$against_dir" cmake -S "$against_dir" -B "$against_dir/build-bench" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DAETHER_ENABLE_BENCH=ON "${launcher[@]}" >&2
  CCACHE_BASEDIR="$against_dir" cmake --build "$against_dir/build-bench" --target aether_local_bench >&2
  against_exe="$against_dir/build-bench/bench/aether_local_bench"
}

run_local() {
  local args=() i
  against=""
  for ((i = 1; i <= $#; i++)); do
    if [[ ${!i} == --against ]]; then
      ((i++))
      against=${!i:-}
      [[ -n $against ]] && git -C "$repo_root" rev-parse --verify -q "$against^{commit}" >/dev/null || usage
    else
      args+=("${!i}")
    fi
  done
  set -- "${args[@]}"
  parse_options "ping_pong|contention|activate|skynet|savina" "$@"
  local erl_dir="$build_dir/bench/erlang"
  if ((arm64)); then
    # Emulated, Aether runs beside its floors only: the sysroot has no CAF, and a
    # native Erlang beside emulated Aether would compare nothing.
    install_bench_deps
    build_targets
  elif [[ -n $against ]]; then
    install_bench_deps
    build_targets -- aether_local_bench
  else
    install_bench_deps libcaf-dev erlang-base
    build_targets -DAETHER_ENABLE_CAF_BENCH=ON -- aether_local_bench caf_local_bench
    export ERL_CRASH_DUMP_SECONDS=0 # no erl_crash.dump files
    mkdir -p "$erl_dir"
    erlc -o "$erl_dir" "$script_dir/erlang/local_bench.erl" >&2
  fi

  machine=$(machine_json)
  versions=$(versions_json)
  local aether="$build_dir/bench/aether_local_bench" caf="$build_dir/bench/caf/caf_local_bench"
  local all
  all=$(nproc)
  local -a common=(--scale "$scale")
  local against_exe=""
  [[ -n $against ]] && build_against
  # With --against, Aether's jobs run beside REV's build of the same program and the peers sit out.
  ((arm64)) || [[ -z $against ]] || peers_note="before.*: the same benchmark built from $against"
  erlang() { # group threads workload pairs
    [[ -n $against ]] && return 0
    ((arm64)) || add_job "$1" erl +S "$2" +P 4000000 -noshell -pa "$erl_dir" -s local_bench main "$3" "$scale" "$4"
  }
  caf_job() { # group arguments...
    if [[ -n $against ]]; then
      # REV's build of Aether's own job, in the CAF job's place: same arguments, its rows renamed.
      job_group+=("$1")
      job_cmd+=("$(printf '%q ' "$against_exe" "${@:2}") | jq -c '.impl = \"before.\" + .impl'")
      return 0
    fi
    ((arm64)) || add_job "$1" "$caf" "${@:2}"
  }
  job_group=()
  job_cmd=()
  local t pairs senders mode config
  if [[ -z $only || $only == ping_pong ]]; then
    # One worker thread shows the cost of a message; all cores add the
    # schedulers' placement; as many pairs as cores add contention.
    local configs=("1:1")
    ((all > 1)) && configs+=("$all:1" "$all:$all")
    for config in "${configs[@]}"; do
      t=${config%:*}
      pairs=${config#*:}
      local g="ping_pong t=$t p=$pairs"
      add_job "$g" "$aether" --only ping_pong --threads "$t" --pairs "$pairs" "${common[@]}"
      caf_job "$g" --only ping_pong --threads "$t" --pairs "$pairs" "${common[@]}"
      erlang "$g" "$t" ping_pong "$pairs"
      add_job "$g" "$aether" --only floor_strand --threads "$t" --pairs "$pairs" "${common[@]}"
    done
  fi
  if [[ -z $only || $only == contention ]]; then
    for mode in unbounded bounded; do
      for senders in 2 4; do
        local g="contention $mode s=$senders"
        add_job "$g" "$aether" --only contention --mode "$mode" --senders "$senders" "${common[@]}"
        caf_job "$g" --only contention --mode "$mode" --senders "$senders" "${common[@]}"
        # The queue floor prints its figure under both modes' keys.
        [[ $mode == unbounded ]] && add_job "$g" "$aether" --only floor_mpsc --senders "$senders" "${common[@]}"
      done
    done
  fi
  if [[ -z $only || $only == activate ]]; then
    add_job activate "$aether" --only activate "${common[@]}"
    add_job activate "$aether" --only activate_es "${common[@]}"
    caf_job activate --only activate "${common[@]}"
    # +P: room for a million processes (the default limit is 262,144).
    ((arm64)) || [[ -n $against ]] || add_job activate erl +S "$all" +P 4000000 -noshell -pa "$erl_dir" -s local_bench main activate "$scale" 1
  fi
  if [[ -z $only || $only == skynet ]]; then
    local threads=(1)
    ((all > 1)) && threads+=("$all")
    for t in "${threads[@]}"; do
      add_job "skynet t=$t" "$aether" --only skynet --threads "$t" "${common[@]}"
      caf_job "skynet t=$t" --only skynet --threads "$t" "${common[@]}"
      erlang "skynet t=$t" "$t" skynet 1
    done
  fi
  if [[ -z $only || $only == savina ]]; then
    local w
    for w in counting thread_ring fork_join; do
      add_job "$w" "$aether" --only "$w" "${common[@]}"
      caf_job "$w" --only "$w" "${common[@]}"
    done
  fi
  local raw="$build_dir/local.raw.jsonl"
  run_rounds "$raw"
  ((arm64)) || [[ -n $against ]] || peers_note="caf: CAF 0.17.6, Debian 12's only packaged C++ actor framework (built by Debian at -O2; CAF's
current line is 1.x). erlang: Erlang/OTP, one scheduler per worker thread (+S N). floor.*: the same
work on the executor (floor.strand) or the queue (floor.mpsc) alone."
  finish_suite local "$raw"
  echo
  print_goals "$build_dir/local.jsonl" '
    map(select(.bench == "activate" and .metric == "bytes_per_actor" and .impl == "aether.event_sourced"))
    | map({label: "idle event-sourced actor (\(.case))", median, min, max, goal: 400, higher: false, unit: " B",
           note: null, runs: (.runs | length)})'
  if [[ -n $against ]]; then
    # Within 5% of REV: each round's pair of runs as a ratio, now / before.
    echo
    echo "against $against ($(git -C "$repo_root" rev-parse --short "$against")):"
    print_goals "$build_dir/local.jsonl" "$ratio_goals_filter"'
      . as $all
      | [ $all[] | select(.impl | startswith("aether")) | select(.unit != "count" and .unit != "bytes") | . as $a
          | ($all | map(select(.case == $a.case and .metric == $a.metric and .impl == "before." + $a.impl)) | first) as $b
          | select($b != null)
          | if ($a.metric | endswith("_per_s"))
            then ratio($a; $b; "\($a.case) \($a.metric) (\($a.impl)): now / before"; 0.95; null)
            else ratio($a; $b; "\($a.case) \($a.metric) (\($a.impl)): now / before"; 1.05; null) | .higher = false end ]'
    remove_against
  fi
}

# -- NATS server for the persistence and bus suites

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

# Stops the server started by start_server and removes its store.
stop_server() {
  if [[ -n ${server_pid:-} ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [[ -n ${server_dir:-} ]] && rm -rf "$server_dir"
  return 0
}

# -- persistence

# Server growth: one fresh nats-server (file storage) per measurement. Writes
# N events (the bench program's `growth` side IMPL), reads the server's
# resident memory before and after, kills it (kill -9), starts it again on the
# same port and store, and times until the stream answers with every write.
# Prints bytes_per_write and restart_ms (and the resident memory figures that
# explain them) as JSON lines.
growth_job() { # impl writes exe prefix
  local impl=$1 writes=$2 exe=$3 prefix=$4
  local dir pid port url="" rss0 rss1 rss2 since out line _
  dir=$(mktemp -d "${TMPDIR:-/tmp}/aether-bench-growth.XXXXXX")
  rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
  : >"$dir/log"
  launch() { # port
    nats-server -js -a 127.0.0.1 -p "$1" -sd "$dir/store" >>"$dir/log" 2>&1 &
    pid=$!
  }
  launch -1
  for _ in $(seq 200); do
    url=$(sed -n 's/.*Listening for client connections on \([0-9.]*:[0-9]*\).*/nats:\/\/\1/p' "$dir/log" | head -n 1)
    [[ -n $url ]] && grep -q 'Server is ready' "$dir/log" && break
    sleep 0.05
  done
  if [[ -z $url ]]; then
    echo "growth: nats-server did not start" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -rf "$dir"
    return 1
  fi
  port=${url##*:}
  rss0=$(rss "$pid")
  if ! out=$("$exe" --only growth --impl "$impl" --writes "$writes" --url "$url" --prefix "$prefix"); then
    kill -9 "$pid" 2>/dev/null || true
    rm -rf "$dir"
    return 1
  fi
  printf '%s\n' "$out"
  rss1=$(rss "$pid")
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  since=$(date +%s%N)
  launch "$port"
  if ! line=$("$exe" --only await_stream --impl "$impl" --writes "$writes" --url "$url" --prefix "$prefix" \
    --since "$since"); then
    kill -9 "$pid" 2>/dev/null || true
    rm -rf "$dir"
    return 1
  fi
  printf '%s\n' "$line"
  rss2=$(rss "$pid")
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  local params
  params=$(printf '%s\n' "$out" | grep '^{' | head -n 1 | jq -c '{writes} + (if .layout then {layout} else {} end)
    + (if .subjects then {subjects} else {} end) + (if .unknown_outcomes then {unknown_outcomes} else {} end)')
  jq -cn --arg impl "$impl" --arg case "server_growth writes=$writes" --argjson p "$params" \
    --argjson rss0 "$rss0" --argjson rss1 "$rss1" --argjson rss2 "$rss2" --argjson writes "$writes" '
    {bench: "server_growth", case: $case, impl: $impl} + $p as $b
    | ($b + {metric: "bytes_per_write", value: (($rss1 - $rss0) / $writes), unit: "B"}),
      ($b + {metric: "rss_after_writes_mb", value: ($rss1 / 1048576), unit: "MB", role: "explains"}),
      ($b + {metric: "rss_after_restart_mb", value: ($rss2 / 1048576), unit: "MB", role: "explains"})'
}

run_persistence() {
  # --growth-writes N: the writes of the server growth measurement (default
  # 1,000,000 times the scale: 100,000 with --quick).
  local growth_writes="" pass=()
  while (($#)); do
    if [[ $1 == --growth-writes ]]; then
      [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage
      growth_writes=$2
      shift 2
    else
      pass+=("$1")
      shift
    fi
  done
  set -- "${pass[@]+"${pass[@]}"}"
  parse_options "append|replay|activation|conflict|growth" "$@"
  [[ -z $growth_writes ]] && growth_writes=$(awk -v s="$scale" 'BEGIN { printf "%d", 1000000 * s }')
  install_bench_deps
  build_targets -- aether_persistence_bench
  start_server
  machine=$(machine_json)
  versions=$(versions_json)
  local exe="$build_dir/bench/aether_persistence_bench"
  # Histories written once per suite run, read by every replay and activation process.
  local prefix
  prefix="pb$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
  local -a common=(--url "$url" --prefix "$prefix" --scale "$scale")
  job_group=()
  job_cmd=()
  if [[ -z $only || $only == append ]]; then
    local n
    for n in 1 100 10000; do
      local g="append $n"
      add_job "$g" "$exe" --only append_writers --actors "$n" "${common[@]}"
      add_job "$g" "$exe" --only append_actors --actors "$n" "${common[@]}"
      add_job "$g" "$exe" --only append_raw --mode same_bytes --window "$n" "${common[@]}"
      add_job "$g" "$exe" --only append_raw --mode plain --window "$n" "${common[@]}"
    done
  fi
  if [[ -z $only || $only == replay ]]; then
    local events per
    for events in 10000 100000; do
      for per in 1 100; do
        local g="replay $events x$per"
        add_job "$g" "$exe" --only replay --impl aether --events "$events" --per-message "$per" "${common[@]}"
        add_job "$g" "$exe" --only replay --impl same_decoder --events "$events" --per-message "$per" "${common[@]}"
        add_job "$g" "$exe" --only replay --impl count --events "$events" --per-message "$per" "${common[@]}"
      done
    done
  fi
  if [[ -z $only || $only == activation ]]; then
    add_job activation "$exe" --only activation --snapshot 0 "${common[@]}"
    add_job activation "$exe" --only activation --snapshot 1 "${common[@]}"
  fi
  if [[ -z $only || $only == conflict ]]; then
    # A losing append's time to its version_conflict, with the plain append as its floor.
    add_job conflict "$exe" --only conflict "${common[@]}"
  fi
  local raw="$build_dir/persistence.raw.jsonl"
  run_rounds "$raw"
  if [[ -z $only || $only == growth ]]; then
    # One round, warm-up included in none: each side writes a fresh server full, which is long.
    local saved_runs=$runs saved_warmup=$warmup impl
    runs=1
    warmup=0
    job_group=()
    job_cmd=()
    for impl in aether nats.c.subjects_10k nats.c.subject_per_write; do
      add_job growth growth_job "$impl" "$growth_writes" "$exe" "$prefix"
    done
    run_rounds "$raw.growth"
    cat "$raw.growth" >>"$raw"
    if [[ -n $only ]]; then
      runs=1 # the rounds the summary names: growth's only
    else
      runs=$saved_runs
      warmup=$saved_warmup
    fi
  fi
  finish_suite persistence "$raw"
  echo
  print_goals "$build_dir/persistence.jsonl" "$ratio_goals_filter"'
    . as $all
    | [ (["1", "100", "10000"][] as $n
         | ($all | pick("append window=\($n)"; "aether.store_writers"; "events_per_s")) as $w
         | ($all | pick("append window=\($n)"; "aether.es_actors"; "events_per_s")) as $e
         | ($all | pick("append window=\($n)"; "nats.c.same_bytes"; "events_per_s")) as $s
         | ($all | pick("append window=\($n)"; "nats.c.plain"; "events_per_s")) as $p
         | ratio($w; $s; "store writers (\($n)) / raw nats.c, same bytes"; 0.75;
                 "the same work on the wire: the store'"'"'s own cost"),
           ratio($w; $p; "store writers (\($n)) / raw nats.c, plain async"; 0.75;
                 "the ceiling: a plain publish skips the fence, the republish and the store'"'"'s headers"),
           ratio($e; $s; "event-sourced actors (\($n)) / raw nats.c, same bytes"; 0.75; null)),
        ($all | map(select(.bench == "replay" and .impl == "aether" and .metric == "events_per_s")) | .[] as $a
         | ($all | pick($a.case; "nats.c.same_decoder"; "events_per_s")) as $d
         | ($all | pick($a.case; "nats.c.count"; "events_per_s")) as $c
         | ratio($a; $d; "replay (\($a.case)) / raw consumer with the same decoder"; 0.8; null),
           ratio($a; $c; "replay (\($a.case)) / raw consumer that only counts"; 0.8; "the transport ceiling")),
        ($all | map(select(.bench == "activation" and .metric == "activation_ms")) | .[]
         | {label: "activation (\(.case))", median, min, max,
            goal: (if .snapshot == 1 then 2 else 50 end), higher: false, unit: " ms", note: null,
            runs: (.runs | length)}),
        ($all | map(select(.bench == "conflict" and .impl == "aether" and .metric == "p50_us")) | .[]
         | {label: "version_conflict to a losing append, p50 (\(.case))", median, min, max, goal: 1000,
            higher: false, unit: " us", note: "seed C1: under 1 ms", runs: (.runs | length)})
      ]'
  if [[ -z $only || $only == growth ]]; then
    echo
    echo "server growth ($growth_writes writes, one fresh nats-server each, one run; restart = kill -9, start, stream info answers):"
    jq -r -s --arg c "server_growth writes=$growth_writes" '
      map(select(.case == $c)) as $g
      | def v($i; $m): ($g | map(select(.impl == $i and .metric == $m)) | first | .median);
        (["aether", "nats.c.subjects_10k", "nats.c.subject_per_write"][] as $i
         | select(v($i; "bytes_per_write") != null)
         | "  \($i)\(($g | map(select(.impl == $i and .layout != null)) | first | .layout // null) as $l
                   | if $l then " (\($l))" else "" end): \(v($i; "bytes_per_write") | round) B per write (\(v($i; "rss_after_writes_mb") | round) MB), restart \(v($i; "restart_ms") | round) ms (then \(v($i; "rss_after_restart_mb") | round) MB), \(v($i; "events_per_s") | round) writes/s\(($g | map(select(.impl == $i and .unknown_outcomes != null)) | first | .unknown_outcomes // null) as $u
                   | if $u then ", \($u) appends of unknown outcome read back" else "" end)"),
        (if v("aether"; "bytes_per_write") != null and v("nats.c.subjects_10k"; "bytes_per_write") != null
         then "  aether / raw nats.c over 10k subjects: bytes per write \(v("aether"; "bytes_per_write") / v("nats.c.subjects_10k"; "bytes_per_write") * 100 | round / 100)x, restart \(v("aether"; "restart_ms") / v("nats.c.subjects_10k"; "restart_ms") * 100 | round / 100)x"
         else empty end),
        (if v("aether"; "events_per_s") != null and v("nats.c.subjects_10k"; "events_per_s") != null
         then "  append throughput / raw nats.c async publish (10k subjects): \(v("aether"; "events_per_s") / v("nats.c.subjects_10k"; "events_per_s") * 100 | round / 100)"
         else empty end)' "$build_dir/persistence.jsonl"
  fi
}

# -- bus

run_bus() {
  parse_options "local|cross_node" "$@"
  install_bench_deps
  build_targets -- aether_bus_bench
  machine=$(machine_json)
  versions=$(versions_json)
  local exe="$build_dir/bench/aether_bus_bench"
  local -a common=(--scale "$scale")
  job_group=()
  job_cmd=()
  if [[ -z $only || $only == local ]]; then
    add_job local "$exe" --only local "${common[@]}"
    add_job local "$exe" --only floor_post "${common[@]}"
  fi
  if [[ -z $only || $only == cross_node ]]; then
    start_server
    local asap
    for asap in 1 0; do
      add_job "cross_node asap=$asap" "$exe" --only cross_node --impl aether --send-asap "$asap" --url "$url" \
        "${common[@]}"
      add_job "cross_node asap=$asap" "$exe" --only cross_node --impl nats.c --send-asap "$asap" --url "$url" \
        "${common[@]}"
    done
  fi
  local raw="$build_dir/bus.raw.jsonl"
  run_rounds "$raw"
  finish_suite bus "$raw"
  echo
  # With send_asap=0 both sides wait for nats.c's ~1 ms flush timer: no goal there.
  print_goals "$build_dir/bus.jsonl" "$ratio_goals_filter"'
    . as $all
    | [ ($all | pick("cross_node latency send_asap=1"; "aether"; "p50_us")) as $a
        | ($all | pick("cross_node latency send_asap=1"; "nats.c"; "p50_us")) as $n
        | ratio($a; $n; "cross-node p50 latency, send-asap: aether / raw nats.c (same bytes)"; 1.5; null)
        | .higher = false ]'
}

# -- cluster: no peer runs the same protocol on NATS; the figures are held
# against the goals (exact and minimal maps, failover within 1.5 s).

run_cluster() {
  local explicit_runs=0 a
  for a in "$@"; do [[ $a == --runs ]] && explicit_runs=1; done
  parse_options "assignment|election|heartbeat|remote_ask|remote_tell|cluster_failover|rolling_restart|cluster_scaling" "$@"
  # The election and failover figures are already medians over 20 kills in
  # one run, and the assignment is a pure computation: one round unless --runs
  # says otherwise (the remote_ask and remote_tell ratios are settled only
  # with --runs 3 or more).
  if ((!explicit_runs)); then
    runs=1
    warmup=0
  fi
  install_bench_deps
  build_targets -- aether_cluster_bench aether_cluster_bench_node
  machine=$(machine_json)
  versions=$(versions_json)
  local exe="$build_dir/bench/aether_cluster_bench"
  local trials=20
  [[ $scale != 1 ]] && trials=3
  job_group=()
  job_cmd=()
  [[ -z $only || $only == assignment ]] && add_job assignment "$exe" --only assignment
  if [[ -z $only || $only != assignment ]]; then
    start_server
    [[ -z $only || $only == election ]] && add_job election "$exe" --only election --url "$url" --trials "$trials"
    [[ -z $only || $only == heartbeat ]] && add_job heartbeat "$exe" --only heartbeat --url "$url"
    local b
    for b in remote_ask remote_tell cluster_failover rolling_restart cluster_scaling; do
      [[ -z $only || $only == "$b" ]] && add_job "$b" "$exe" --only "$b" --url "$url" --trials "$trials" --scale "$scale"
    done
  fi
  local raw="$build_dir/cluster.raw.jsonl"
  run_rounds "$raw"
  local results="$build_dir/cluster.jsonl"
  aggregate "$raw" "$results" "$machine" "$versions"
  echo
  echo "machine: $(jq -r '"\(.cpu), \(.cores) cores, load average at start \(.load_at_start)"' <<<"$machine")"
  echo "versions: $(jq -r 'to_entries | map("\(.key) \(.value)") | join("; ")' <<<"$versions")"
  echo "rounds: $runs, election trials per round: $trials"
  ((arm64)) && echo "EMULATED: aarch64 programs under qemu-user; the figures say nothing of a board's speed"
  echo
  # 896 assignment rows (nodes 1..32, shards 64..4096, add and remove): their worst case.
  jq -r -s '
    (map(select(.bench == "cluster_assignment")) | group_by(.metric)[]
     | "cluster_assignment \(.[0].metric): worst \(map(.max) | max) over \(length) cases (nodes 1-32, shards 64-4096, add and remove)"),
    (map(select(.bench != "cluster_assignment"))[]
     | "\(.bench) \(.case) \(.impl) \(.metric): \(.median) [\(.min)-\(.max)] \(.unit)")' "$results"
  # Routing beside raw nats.c between the same two processes.
  jq -c 'select(.bench == "remote_ask" or .bench == "remote_tell")' "$results" >"$build_dir/cluster.routing.jsonl"
  if [[ -s $build_dir/cluster.routing.jsonl ]]; then
    echo
    print_table "$build_dir/cluster.routing.jsonl"
  fi
  if jq -s -e 'any(.[]; .bench == "cluster_scaling")' "$results" >/dev/null; then
    echo "cluster_scaling: all node processes share this machine's $(nproc) cores with the nats-server, so more"
    echo "nodes add routing hops and contention, not capacity: the figures show overhead, not scale."
  fi
  echo
  print_goals "$results" "$ratio_goals_filter"'
    [ (map(select(.bench == "cluster_assignment" and .metric == "max_minus_min")) | select(length > 0)
       | {label: "cluster_assignment max_minus_min, worst case", median: (map(.max) | max), min: (map(.max) | max),
          max: (map(.max) | max), goal: 1, higher: false, unit: "", note: "a pure function: one run is exact", runs: 3}),
      (map(select(.bench == "cluster_assignment" and .metric == "moves_over_optimal")) | select(length > 0)
       | {label: "cluster_assignment moves_over_optimal, worst case", median: (map(.max) | max), min: (map(.max) | max),
          max: (map(.max) | max), goal: 1, higher: false, unit: "", note: "a pure function: one run is exact", runs: 3}),
      (map(select(.bench == "cluster_election" and .metric == "p50_ms"))[]
       | {label: "failover, kill -9 of the leader to a map of the new term on every node (p50)", median, min, max,
          goal: 1500, higher: false, unit: " ms", note: "over \(.trials) trials a round", runs: .trials}),
      (. as $all | ($all | pick("two_nodes"; "aether"; "p50_us")) as $a | ($all | pick("two_nodes"; "nats.c"; "p50_us")) as $n
       | ratio($a; $n; "remote_ask p50: aether / raw nats.c request-reply"; 1.5; null) | .higher = false),
      (. as $all | ($all | map(select(.bench == "remote_tell")) | pick("two_nodes"; "aether"; "msgs_per_s")) as $a
       | ($all | map(select(.bench == "remote_tell")) | pick("two_nodes"; "nats.c"; "msgs_per_s")) as $n
       | ratio($a; $n; "remote_tell: aether / raw nats.c publish"; 0.5; null)),
      (map(select(.bench == "cluster_failover" and .metric == "p50_ms"))[]
       | {label: "failover, kill -9 of a node to the first answered ask to an actor of its shards (p50)", median, min,
          max, goal: 3000, higher: false, unit: " ms", note: "over \(.trials) trials a round", runs: .trials}),
      (map(select(.bench == "rolling_restart" and .metric == "failed_asks"))[]
       | {label: "rolling restart of three nodes, failed asks", median, min, max, goal: 0, higher: false, unit: "",
          note: "\(.asks) asks a round (a count: one round is a fact of that round)", runs: 3}) ]'
}

# -- suites. A further suite adds a run_<name> function above (building its
# targets, adding its jobs with add_job, then run_rounds and finish_suite)
# and a line here.
(($# >= 1)) || usage
suite=$1
shift
# --arm64 and --plot may stand anywhere among a suite's options.
arm64=0
plot=0
args=()
for a in "$@"; do
  if [[ $a == --arm64 ]]; then
    arm64=1
  elif [[ $a == --plot ]]; then
    plot=1
  else
    args+=("$a")
  fi
done
set -- "${args[@]}"
if ((arm64)); then
  build_dir="${AETHER_ARM64_BUILD:-$repo_root/build-arm64}"
  # aarch64 programs run under qemu-user through binfmt_misc (tools/cross_arm64.sh registers it),
  # with the cross C library as qemu's prefix.
  export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
  peers_note="EMULATED: aarch64 programs under qemu-user on $(uname -m); the figures say nothing of a board's speed.${peers_note:+ $peers_note}"
fi
case "$suite" in
  local) run_local "$@" ;;
  persistence) run_persistence "$@" ;;
  bus) run_bus "$@" ;;
  cluster) run_cluster "$@" ;;
  *) usage ;;
esac
