#!/usr/bin/env bash
# Installs Debian packages, tolerating a mirror that is mid-sync: `apt-get
# update` is retried and an index failing to refresh is not fatal, as long
# as the packages themselves install.
# Usage: scripts/apt-install.sh PACKAGE...
set -uo pipefail
[ "$#" -gt 0 ] || exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if $SUDO apt-get update -qq; then break; fi
    echo "apt-get update failed (attempt $attempt); retrying" >&2
    sleep $((attempt * 5))
done
for attempt in 1 2 3; do
    if $SUDO apt-get install -y -qq --no-install-recommends "$@"; then exit 0; fi
    echo "apt-get install failed (attempt $attempt); refreshing indexes and retrying" >&2
    $SUDO apt-get update -qq || true
    sleep $((attempt * 5))
done
echo "could not install: $*" >&2
exit 1
