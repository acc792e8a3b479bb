#!/usr/bin/env bash
# Every figure of the performance targets (docs/PERFORMANCE.md, "Against the targets"), each run against a
# freshly started gateway, one summary line per run.
#
#   scripts/targets.sh GW CONFIG [ROUNDS]
#
# e.g. go build -o /tmp/gw ./cmd/msrpgw && go build -o /tmp/load ./cmd/msrpgw-load, then
#   scripts/targets.sh /tmp/gw /tmp/loadrun/gw.yaml 2
# CONFIG must listen SIP on 127.0.0.1:15060 (the config in docs/PERFORMANCE.md, "How the figures are made").
# LOAD is the tool's binary (default /tmp/load). The message and setup rows run ROUNDS times (default 2), the
# idle rows once. About 4 minutes per round and 2 for the idle rows.
set -euo pipefail
gw=$1 config=$2 rounds=${3:-2}
load=${LOAD:-/tmp/load}
ulimit -n 20000 # the 15,000 own-connection idle sessions

run() {
  local label=$1
  shift
  "$gw" -config "$config" >/dev/null 2>&1 &
  local pid=$!
  sleep 0.7
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$gw did not start (port in use?)" >&2
    exit 1
  fi
  local out
  # || true: a run that was not clean exits 3 (msrpgw-load -h) and its report is still wanted.
  out=$("$load" -gw 127.0.0.1:15060 "$@" -pid "$pid" -json 2>/dev/null || true)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  printf '%s\n' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin); g = d["gateway_process"]; s = d["setups"]
parts = [sys.argv[1] + ":"]
for k, f in d["flows"].items():
    w = f.get("wire_latency")
    parts.append("%s sent=%d delivered=%d lost=%d duplicated=%d reordered=%d rate=%.0f/s p99=%.2fms%s" % (k, f["sent"],
        f["delivered"], f["lost"], f["duplicated"], f["reordered"], f["delivered_rate"], f["latency"]["p99_ms"],
        " wire_p99=%.2fms" % w["p99_ms"] if w else ""))
parts.append("setups=%d failed=%d %.0f/s max=%.1fms byes=%d bye_failures=%d" % (s["count"], s["failures"],
    s["per_second"], s["duration"]["max_ms"], s["byes"], s["bye_failures"]))
parts.append("cpu_us_per_msg=%.1f rss_loaded=%dMiB rss_max=%dMiB fds=%d/%d/%d steal=%.2f%%" % (g["cpu_us_per_msg"],
    g["rss_kib_loaded"] // 1024, g["rss_kib_max"] // 1024, g["fds_start"], g["fds_loaded"], g["fds_end"],
    d.get("machine_steal_pct", 0)))
print(" ".join(parts))
' "$label"
}

date -u +%FT%TZ
for _ in $(seq "$rounds"); do
  run m2s-1x6000 -mode msg2msrp -sessions 1 -rate 6000 -duration 10s
  run s2m-1x4000 -mode msrp2msg -sessions 1 -rate 4000 -duration 10s
  run m2s-100x10000-even -mode msg2msrp -sessions 100 -rate 10000 -duration 10s
  run m2s-100x10000-poisson -mode msg2msrp -sessions 100 -rate 10000 -duration 10s -arrival poisson
  run s2m-100x8000-even -mode msrp2msg -sessions 100 -rate 8000 -duration 10s
  run s2m-100x8000-poisson -mode msrp2msg -sessions 100 -rate 8000 -duration 10s -arrival poisson
  run m2s-1x5000-even -mode msg2msrp -sessions 1 -rate 5000 -duration 10s
  run m2s-100x5000-even -mode msg2msrp -sessions 100 -rate 5000 -duration 10s
  run setup-2000-session-first -mode msg2msrp -sessions 2000 -rate 2000 -duration 1s
  run setup-2000-message-first -mode msg2msrp -setup message -sessions 2000 -rate 2000 -duration 1s
done
run idle-15000-own-connection -idle 15000 -conn-per-session -setup-concurrency 200 -duration 20s -drain 15s
run idle-100000-shared -idle 100000 -setup-concurrency 200 -duration 10s -drain 60s
date -u +%FT%TZ
