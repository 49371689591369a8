#!/usr/bin/env bash
# Installs the JavaScript packages of tests/js (the official NATS client,
# pinned in tests/js/package-lock.json) into tests/js/node_modules, when they
# are missing or differ from the lock file. Needs Node.js 18 or later and npm;
# without them it says so and installs nothing (the JavaScript test then
# fails with the same advice).
set -euo pipefail

js_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/js" && pwd)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install_js_deps: node and npm not found; the JavaScript interoperability test needs Node.js 18 or later" >&2
  exit 0
fi
# npm ci records the lock file it installed in node_modules/.package-lock.json.
installed="$js_dir/node_modules/.package-lock.json"
if [[ -f $installed ]] && node -e '
  const [lock, installed] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")));
  const pick = (p) => Object.fromEntries(Object.entries(p).filter(([k]) => k !== "").map(([k, v]) => [k, v.version]));
  process.exit(JSON.stringify(pick(lock.packages)) === JSON.stringify(pick(installed.packages)) ? 0 : 1);
' "$js_dir/package-lock.json" "$installed"; then
  exit 0
fi
echo "installing the JavaScript packages of tests/js (npm ci)" >&2
(cd "$js_dir" && npm ci --no-audit --no-fund --ignore-scripts >&2)
