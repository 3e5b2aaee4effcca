#!/usr/bin/env bash
# Cross-builds onprem for ARM boards without Docker, with Debian's own Rust
# 1.85 toolchain (also the MSRV check), then runs the aarch64 binary under
# qemu: `onprem --version`, and an agent (with a simulated Pi 5's
# hardware) whose /metrics is scraped.
#
#   aarch64-unknown-linux-gnu       Pi 3/4/5 (64-bit OS), Jetson   built, run under qemu
#   armv7-unknown-linux-gnueabihf   Pi 2/3/4 (32-bit Pi OS)        built, --version under qemu
#
# ARMv6 (Pi Zero / Pi 1) needs a toolchain Debian does not ship: see
# cross.toml.
#
# Usage: scripts/build-arm.sh [--profile release|ci-cross] [--no-install | --install-only]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
install=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --no-install) install=0; shift ;;
        --install-only) install=only; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# Debian's Rust for the build machine and the ARM standard libraries must
# be one version; so must every Multi-Arch library they pull in. While a
# mirror syncs, the foreign-architecture indexes can lag the native ones:
# pin each skewed library to the version the ARM indexes have.
install_toolchain() {
    dpkg --add-architecture arm64
    dpkg --add-architecture armhf
    for attempt in 1 2 3; do
        apt-get update -qq && break
        echo "apt-get update failed (attempt $attempt); continuing with what was fetched" >&2
        sleep $((attempt * 5))
    done
    local v va
    v=$(candidate libstd-rust-web-dev:arm64)
    va=$(candidate libstd-rust-web-dev:armhf)
    if [ -z "$v" ] || [ "$v" != "$va" ]; then
        echo "no common libstd-rust-web-dev version for arm64 ($v) and armhf ($va)" >&2
        exit 1
    fi
    local pkgs=(rustc-web="$v" cargo-web="$v" libstd-rust-web-dev="$v" libstd-rust-web-dev:arm64="$v"
        libstd-rust-web-dev:armhf="$v" gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
        libc6-dev-arm64-cross libc6-dev-armhf-cross qemu-user-static curl)
    local out skewed lib lv
    for _ in 1 2 3 4 5 6 7 8; do
        if out=$(DEBIAN_FRONTEND=noninteractive apt-get install -s -y --no-install-recommends --allow-downgrades "${pkgs[@]}" 2>&1); then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades "${pkgs[@]}"
            return
        fi
        skewed=$(echo "$out" | grep -oE 'Depends: [a-z0-9.+-]+:(arm64|armhf)' | sed -E 's/Depends: //; s/:(arm64|armhf)$//' | sort -u)
        [ -n "$skewed" ] || { echo "$out" >&2; exit 1; }
        for lib in $skewed; do
            lv=$(candidate "$lib:arm64")
            echo "pinning $lib to $lv on amd64, arm64 and armhf (indexes out of step)" >&2
            pkgs+=("$lib=$lv" "$lib:arm64=$lv" "$lib:armhf=$lv")
        done
    done
    echo "$out" >&2
    exit 1
}

if [ "$install" = 1 ]; then
    missing=0
    for f in /usr/bin/rustc /usr/lib/rustlib/aarch64-unknown-linux-gnu /usr/lib/rustlib/armv7-unknown-linux-gnueabihf \
             /usr/bin/aarch64-linux-gnu-gcc /usr/bin/arm-linux-gnueabihf-gcc /usr/bin/qemu-aarch64-static /usr/bin/curl; do
        [ -e "$f" ] || missing=1
    done
    [ "$missing" = 0 ] || install_toolchain
fi
if [ "$install" = only ]; then
    missing=0
    [ -e /usr/bin/rustc ] || missing=1
    [ "$missing" = 0 ] || install_toolchain
    exit 0
fi

export RUSTC=/usr/bin/rustc
"$RUSTC" --version
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_DIR="$PWD/target/cross"
dir_of() { echo "$CARGO_TARGET_DIR/$1/$profile"; }

for target in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
    echo "== building $target ($profile) with $("$RUSTC" --version)"
    cargo build --locked --quiet --profile "$profile" --target "$target" --bin onprem
    ls -l "$(dir_of "$target")/onprem"
done

aarch64="$(dir_of aarch64-unknown-linux-gnu)/onprem"
armv7="$(dir_of armv7-unknown-linux-gnueabihf)/onprem"
# The guest's loader and libc must come from one package. Debian's ARM
# standard libraries pull in libc6:arm64/armhf (multiarch, under /lib), and
# the host's ld.so.cache then lists them: with -L /usr/<triple> the guest
# would mix the cross loader with the multiarch libc and hang in
# pthread_create. Use the multiarch root when it is there.
sysroot() { if [ -e "/lib/$1" ]; then echo /; else echo "/usr/$2"; fi; }
root64=$(sysroot ld-linux-aarch64.so.1 aarch64-linux-gnu)
root32=$(sysroot ld-linux-armhf.so.3 arm-linux-gnueabihf)
run64() { qemu-aarch64-static -L "$root64" "$aarch64" "$@"; }

echo "== aarch64 under qemu: --version"
run64 --version | grep "^onprem "
echo "== armv7 under qemu: --version"
qemu-arm-static -L "$root32" "$armv7" --version | grep -q "^onprem "

echo "== aarch64 under qemu: agent and a scrape of /metrics"
log=$(mktemp)
fixtures="$PWD/tests/fixtures"
# qemu itself in the background (not a function), so that $! is its pid.
qemu-aarch64-static -L "$root64" "$aarch64" agent --config "$fixtures/agent-empty.yaml" --web.listen-address=127.0.0.1:0 \
    --path.procfs="$fixtures/proc" --path.sysfs="$fixtures/sys" --path.rootfs="$fixtures/rootfs" \
    --collector.textfile.directory="$fixtures/textfile" \
    --hardware=sim --hardware.profile=pi5-fan 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 1 600); do
    addr=$(grep -o 'listening address=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "agent exited"; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { cat "$log"; echo "agent did not start under qemu"; exit 1; }
body=$(curl -fsS "http://$addr/metrics")
# Here-strings, not `echo | grep -q`: grep -q stops reading at its first
# match, and under pipefail the echo's SIGPIPE (exit 141) failed the run.
grep -q '^node_cpu_seconds_total{cpu="0",mode="user"} 6402.11$' <<<"$body"
grep -q '^onprem_build_info{arch="aarch64"' <<<"$body"
grep -q '^node_scrape_collector_success{collector="hwmon"} 1$' <<<"$body"
# The hardware layer built for aarch64: the Pi 5 fan and CPU zone of the
# simulated world, read through the real sysfs drivers.
grep -q '^onprem_device_up{device="fan",driver="pi5-fan",kind="fan"} 1$' <<<"$body"
grep -q '^onprem_temperature_celsius{device="cpu"} ' <<<"$body"
echo "scraped $(grep -c '^# TYPE' <<<"$body") families from the aarch64 agent at $addr"
kill "$pid"
wait "$pid" || true
echo "ARM builds OK"
