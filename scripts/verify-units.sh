#!/usr/bin/env bash
# Runs `systemd-analyze verify` on the unit files. verify exits 0 even when
# it ignores a bad line, so any output at all is a failure here. The
# binary path is pointed at a built onprem, since verify checks that
# ExecStart= is executable.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v systemd-analyze >/dev/null || bash scripts/apt-install.sh systemd
bin="${ONPREM_BIN:-$PWD/target/debug/onprem}"
[ -x "$bin" ] || cargo build --quiet --bin onprem
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for unit in systemd/*.service; do
    sed "s#/usr/bin/onprem#$bin#g" "$unit" > "$tmp/$(basename "$unit")"
done
out=$(systemd-analyze verify "$tmp"/*.service 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then
    echo "systemd-analyze verify found problems:"
    echo "$out"
    exit 1
fi
echo "systemd-analyze verify: $(ls systemd/*.service | xargs -n1 basename | tr '\n' ' ')OK"
