#!/usr/bin/env bash
# Where the relays of both tunnel paths spend their CPU in the iperf3 step
# of `cargo bench --bench tunnel`, in seconds per GB through, by class:
# kernel, record encryption, memmove, allocation, the rest of user space.
#
# Needs perf (linux-perf), iperf3, rathole on PATH (see benches/README.md)
# and a release build with its symbols kept, so that samples in ring's
# AES-GCM can be told from the rest:
#
#   CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --bin onprem
#   cargo bench --bench tunnel --no-run
#   benches/relay-profile.sh [OUTDIR]
#
# It runs the bench once (ONPREM_BENCH_SECONDS=8 unless set), samples
# every CPU with `perf record -a` from the first iperf3 client to the
# last, and multiplies each class's share of a relay's samples by that
# relay's CPU per GB as the bench printed it in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
for tool in perf iperf3 python3; do
    command -v "$tool" >/dev/null || { echo "relay-profile: $tool not found" >&2; exit 2; }
done
# (grep -c reads all of nm's output: with pipefail, grep -q would fail the pipe)
if ! nm target/release/onprem 2>/dev/null | grep -c aes_gcm >/dev/null; then
    echo "relay-profile: target/release/onprem has no symbols; build it with CARGO_PROFILE_RELEASE_STRIP=false" >&2
    exit 2
fi
bench=$(ls -t target/release/deps/tunnel-* 2>/dev/null | grep -v '\.d$' | head -1)
[ -n "$bench" ] || { echo "relay-profile: run 'cargo bench --bench tunnel --no-run' first" >&2; exit 2; }

ONPREM_BENCH_SECONDS="${ONPREM_BENCH_SECONDS:-8}" "$bench" > "$out/bench.out" 2>&1 &
bench_pid=$!
until pgrep -f 'iperf3 -c' >/dev/null; do
    kill -0 "$bench_pid" 2>/dev/null || { cat "$out/bench.out" >&2; exit 1; }
    sleep 0.05
done
ps -eo pid,args | grep -E 'onprem (agent|control-plane|port-forward)|rathole --(server|client)' | grep -v grep > "$out/pids.txt"
perf record -a -F 1999 -o "$out/perf.data" 2> "$out/perf.err" &
perf_pid=$!
# The three iperf3 steps run back to back; the last has ended when no
# client has run for 3 s.
quiet=0
while [ "$quiet" -lt 30 ]; do
    if pgrep -f 'iperf3 -c' >/dev/null; then quiet=0; else quiet=$((quiet + 1)); fi
    sleep 0.1
done
kill -INT "$perf_pid"
wait "$perf_pid" || true
wait "$bench_pid"
perf script -i "$out/perf.data" -F comm,pid,tid,ip,sym,dso 2>/dev/null > "$out/perf.script"
grep -E '^throughput' "$out/bench.out"
python3 - "$out/perf.script" "$out/pids.txt" "$out/bench.out" <<'PY'
import collections, re, sys

script, pids, bench = sys.argv[1:4]
roles = {}
for line in open(pids):
    pid, _, args = line.strip().partition(" ")
    for needle, role in [("onprem port-forward", "port-forward"), ("onprem control-plane", "control plane"),
                         ("onprem agent", "agent"), ("rathole --server", "rathole server"),
                         ("rathole --client", "rathole client")]:
        if needle in args:
            roles[int(pid)] = role

def klass(sym, dso):
    if "kernel" in dso:
        # Page faults are the allocator's cost; the rest of the kernel,
        # socket copies included, is one class.
        if re.match(r"(clear_page|exc_page_fault|asm_exc_page_fault|do_anonymous|handle_mm)", sym):
            return "alloc"
        return "kernel"
    if "libcrypto" in dso or re.search(r"aes|gcm|ghash|clmul", sym, re.I):
        return "cipher"
    if re.search(r"memmove|memcpy", sym):
        return "memmove"
    if re.search(r"malloc|free|_int_|unlink_chunk|memset|realloc|calloc|tcache", sym):
        return "alloc"
    return "user"

counts = collections.defaultdict(collections.Counter)
header = re.compile(r"^\s*(\S.*?)\s+(\d+)/(\d+)\s")
frame = re.compile(r"\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$")
role = None
for line in open(script, errors="replace"):
    m = header.match(line)
    if m:
        role = roles.get(int(m.group(2)))
        # Without call chains the sample's frame is on the same line.
        rest = line[m.end():]
        if not rest.strip():
            continue
        line = rest
    if role is None:
        continue
    f = frame.match(line)
    if f:
        counts[role][klass(f.group(1), f.group(2))] += 1
    role = None

text = open(bench).read()
cpu = {}
for path, prefix in [("onprem", ""), ("rathole", "rathole ")]:
    m = re.search(r"^throughput %s\s.*?\(([^)]*)\)" % path, text, re.M)
    if not m:
        sys.exit("relay-profile: no CPU per GB for %s in the bench output" % path)
    for part in m.group(1).split(", "):
        name, value = part.rsplit(" ", 1)
        cpu[prefix + name] = float(value)

classes = ["kernel", "cipher", "memmove", "alloc", "user"]
paths = {"onprem": ["port-forward", "control plane", "agent"], "rathole": ["rathole client", "rathole server"]}
print("| s per GB | " + " | ".join(classes) + " | all |")
print("|---" * (len(classes) + 2) + "|")
for path, relays in paths.items():
    total = collections.Counter()
    for r in relays:
        n = sum(counts[r].values())
        if n == 0:
            sys.exit("relay-profile: no samples for %s" % r)
        row = {c: cpu[r] * counts[r][c] / n for c in classes}
        total.update(row)
        print("| %s | " % r + " | ".join("%.2f" % row[c] for c in classes) + " | %.2f |" % cpu[r])
    print("| **%s** | " % path + " | ".join("%.2f" % total[c] for c in classes) +
          " | %.2f |" % sum(cpu[r] for r in relays))
PY
echo "relay-profile: files in $out"
