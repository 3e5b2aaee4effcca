#!/usr/bin/env bash
# The test command: installs the real peers the tests run against, then
# runs every test of the workspace.
#
#   Debian: prometheus-node-exporter (node_exporter 1.5, the compatibility
#           reference), prometheus (promtool), systemd (systemd-analyze),
#           zsh and fish (completion scripts)
#   PyPI:   prometheus-client (an independent exposition parser);
#           in target/redfish-venv: redfish-service-validator (DMTF),
#           redfishtool and sushy (unmodified Redfish clients);
#           in target/schemathesis-venv: schemathesis (the REST API
#           against its OpenAPI document)
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
# Shells whose completion scripts (`onprem completion zsh|fish`) are loaded.
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing test peers: ${need[*]}"
    bash scripts/apt-install.sh "${need[@]}"
fi
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    echo "installing prometheus-client (PyPI)"
    python3 -m pip install --quiet prometheus-client 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages prometheus-client
fi

# The Redfish peers, pinned (the validator's 3.x output is what the tests
# read), in a venv of their own so that they never touch the system's
# Python.
venv=target/redfish-venv
if ! "$venv/bin/python" -c 'import redfish_service_validator, redfishtoollib, sushy' 2>/dev/null; then
    echo "installing redfish-service-validator, redfishtool, sushy (PyPI) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        redfish-service-validator==3.1.8 redfishtool==1.1.8 sushy==5.14.0
fi

# schemathesis, pinned (its 4.x flags are what tests/schemathesis.rs
# passes), in a venv of its own.
st_venv=target/schemathesis-venv
if ! "$st_venv/bin/schemathesis" --version 2>/dev/null | grep -q ' 4\.32\.5$'; then
    echo "installing schemathesis (PyPI) into $st_venv"
    rm -rf "$st_venv"
    python3 -m venv "$st_venv"
    "$st_venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
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
