#!/usr/bin/env bash
# Sets everything up, builds the chat room sample and runs it on the
# embedded default (one process, no server). Arguments go to the sample.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/install_deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" --target chat_room
exec "$root/build/samples/chat_room" "$@"
