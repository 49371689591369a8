#!/usr/bin/env bash
# Sets everything up, builds a sample and runs it.
#   tools/run_sample.sh                        the chat room, on the embedded default
#   tools/run_sample.sh bank_account           bank accounts, events in memory
#   tools/run_sample.sh bank_account --nats    bank accounts on JetStream: starts a nats-server
#                                              on a free loopback port in a temp dir, runs the
#                                              sample twice (the second run continues the first)
# Other arguments go to the sample (e.g. chat_room --serve).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
sample="chat_room"
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
  sample="$1"
  shift
fi
nats=0
args=()
for a in "$@"; do
  if [ "$a" = "--nats" ]; then nats=1; else args+=("$a"); fi
done

"$root/tools/install_deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" --target "$sample"
bin="$root/build/samples/$sample"

if [ "$nats" -eq 0 ]; then
  exec "$bin" "${args[@]}"
fi

dir="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
nats-server -js -a 127.0.0.1 -p -1 -sd "$dir/store" -l "$dir/server.log" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(grep -o 'Listening for client connections on 127.0.0.1:[0-9]*' "$dir/server.log" 2>/dev/null | grep -o '[0-9]*$' || true)"
  [ -n "$port" ] && grep -q "Server is ready" "$dir/server.log" && break
  sleep 0.1
done
[ -n "$port" ] || { echo "nats-server did not start:" >&2; cat "$dir/server.log" >&2; exit 1; }
export AETHER_NATS_URL="nats://127.0.0.1:$port"
echo "== nats-server on $AETHER_NATS_URL; first run" >&2
"$bin" "${args[@]}"
echo "== second run: the same accounts, restored from JetStream" >&2
"$bin" "${args[@]}"
