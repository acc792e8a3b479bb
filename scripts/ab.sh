#!/usr/bin/env bash
# A/B runs of two gateway builds under the load tool, alternating, each run against a freshly started
# gateway (docs/PERFORMANCE.md: this VM's speed drifts, so only alternating runs compare).
#
#   scripts/ab.sh N CONFIG GW_A GW_B -- LOAD_ARGS...
#
# e.g. go build -o /tmp/gw-old ./cmd/msrpgw (at the old commit), go build -o /tmp/gw-new ./cmd/msrpgw,
# go build -o /tmp/load ./cmd/msrpgw-load, then
#   scripts/ab.sh 3 gw.yaml /tmp/gw-old /tmp/gw-new -- -mode msg2msrp -sessions 100 -rate 5000 -duration 10s
# CONFIG must listen SIP on 127.0.0.1:15060 (the tool's -gw below). LOAD is the tool's binary (default
# /tmp/load). A "build" may be a script that sets the environment and execs the binary (GOGC=off ...).
# Prints one line per run: gateway CPU per message (and time waiting for a CPU), RSS, and each flow's loss,
# reorders and latency.
set -euo pipefail
n=$1 config=$2 a=$3 b=$4
shift 4
[ "${1:-}" = "--" ] && shift
load=${LOAD:-/tmp/load}
for _ in $(seq "$n"); do
  for gw in "$a" "$b"; do
    "$gw" -config "$config" >/dev/null 2>&1 &
    pid=$!
    sleep 0.7
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$gw did not start (port in use?)" >&2
      exit 1
    fi
    # || true: a run that was not clean exits 3 (msrpgw-load -h) and its report is still wanted.
    out=$("$load" -gw 127.0.0.1:15060 "$@" -pid "$pid" -json 2>/dev/null || true)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    printf '%s\n' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin); g = d["gateway_process"]
def wire(f):
    w = f.get("wire_latency")
    return " wire_p50=%.2f wire_p99=%.2f" % (w["p50_ms"], w["p99_ms"]) if w else ""
flows = " ".join("%s lost=%d reordered=%d p50=%.2f p99=%.2f%s delivered=%.0f/s" % (k, f["lost"], f["reordered"],
    f["latency"]["p50_ms"], f["latency"]["p99_ms"], wire(f), f["delivered_rate"]) for k, f in d["flows"].items())
rq = " runqueue_wait_us_per_msg=%.1f" % g["runqueue_wait_us_per_msg"] if "runqueue_wait_us_per_msg" in g else ""
rq += " steal=%.2f%%" % d["machine_steal_pct"] if "machine_steal_pct" in d else ""
print(sys.argv[1], "cpu_us_per_msg=%.1f" % g["cpu_us_per_msg"] + rq, "rss_max=%dMiB" % (g["rss_kib_max"] // 1024), flows,
    "tool_cpu_ms=%d" % d.get("tool_cpu_ms", 0))
' "$(basename "$gw")"
  done
done
