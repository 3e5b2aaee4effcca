#!/usr/bin/env bash
# The test command: installs the real peers the tests run against, then
# runs every test of the workspace.
#
#   Debian: prometheus-node-exporter (node_exporter 1.5, the compatibility
#           reference), prometheus (promtool), systemd (systemd-analyze)
#   PyPI:   prometheus-client (an independent exposition parser)
#
# A test whose peer is missing fails with a message naming the package; it
# never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v promtool >/dev/null || need+=(prometheus)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v mkfifo >/dev/null || need+=(coreutils)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing test peers: ${need[*]}"
    bash scripts/apt-install.sh "${need[@]}"
fi
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    echo "installing prometheus-client (PyPI)"
    python3 -m pip install --quiet prometheus-client 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages prometheus-client
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo prints one per binary).
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    END { printf "%d passed, %d failed", p, f }' "$log")
echo
echo "tests: $summary"
mkdir -p target
echo "$summary" > target/test-summary.txt
exit "$status"
