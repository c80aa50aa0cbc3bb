#!/usr/bin/env bash
# Benchmark of one serving shard (`mosaic-serve`) with the night's ranker re-scoring each user's
# ranked candidates (up to 500) online, beside a Python peer serving the same API over the same
# published run with the same model in numpy (Cluster/bench/serve_peer.py: Starlette on uvicorn,
# one worker).
#
# The world: the nightly DAG (Jobs/nightly.dag) on the default synthetic world (USERS users), so
# the run holds a trained ranker (ranker.h5) and feeds whose /ranked group stores every user's
# top-500 candidates with their ranker features; a second `feed rank` run beside it for the hot
# swaps. Every user's session first gets 3 saves (so every feed request re-scores; the server
# that keeps re-scorings then answers each user once, so its runs start warm), and both
# sides are checked to give user 7 the same pins and scores (to 1e-4).
# Load: wrk on this machine (1 thread, 8 s per run), random users; GET /v1/feed/{user}?k=20 at
# 1, 8 and 32 connections while a second wrk posts POST /v1/events (10 events, 1 connection,
# paced at one request per 10 ms); Mosaic started with --no-score-cache (every GET re-scores the
# 500 candidates, as the peer does) and with its default cache (a session's re-scoring reused
# until its engagements change); GET across hot swaps (POST /admin/reload between the two runs
# every 3 s, over 15 s); POST /v1/events alone (16 connections, durable; events/s). Prints requests/s, p50,
# p99 and p99.9 for each, and Mosaic / peer.
#
#   Cluster/bench/serve.sh            (OUT=folder; USERS=2000; RANKS=2 for the nightly DAG)
#
# Creates `.venv-bench` (gitignored) with uvicorn, starlette, h5py, numpy; installs wrk with apt
# when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-out/bench-serve}"
users="${USERS:-2000}"
ranks="${RANKS:-2}"
duration="${DURATION:-8s}"
M=.build/release/mosaic
[ -n "${SKIP_BUILD:-}" ] || swift build -c release
if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y wrk >/dev/null
fi
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import uvicorn, starlette, h5py, numpy" 2>/dev/null \
  || "$venv/bin/python" -m pip install -q uvicorn starlette h5py numpy
night="$out/nightly/current"
if [ ! -e "$night/feeds/current" ]; then
  $M pipeline run Jobs/nightly.dag --root "$out/nightly" --ranks "$ranks" --set USERS="$users" \
    --set MONITOR_ON_WARNING=--no-fail-on-warning >&2
fi
night=$(cd "$night" && pwd -P)
feeds="$night/feeds"
# A second run beside the first, for the hot swaps.
[ -d "$feeds/runs/feeds-swap" ] || Cluster/mpirun-local.sh -np "$ranks" $M feed rank --world "$night/world" \
  --candidates "$night/candidates" --embeddings "$night/embeddings" --ranker "$night/ranker.h5" \
  --user-model "$night/two-tower" --out "$feeds" --run-id feeds-swap >/dev/null
runs=("$(basename "$(readlink "$feeds/current")")" feeds-swap)
[ "${runs[0]}" != feeds-swap ] || runs[0]=$(ls "$feeds/runs" | grep -v '^feeds-swap$' | head -1)
ln -sfn "runs/${runs[0]}" "$feeds/.current-tmp" && mv -T "$feeds/.current-tmp" "$feeds/current"
rm -rf "$out/wal" "$out/wal-cached" "$out/peer-events.csv" "$out/swaps.log"
p1=18181; p2=18182; p3=18183
# One BLAS thread per request: the shard scores requests in parallel (a scorer per core). `exec`:
# $! is the server itself, which the trap stops.
serve() { MOSAIC_ADMIN_TOKEN=bench OPENBLAS_NUM_THREADS=1 exec .build/release/mosaic-serve --feeds "$feeds" \
  --world "$night/world" --port "$1" --wal-dir "$2" --watch-interval 0 "${@:3}"; }
serve $p1 "$out/wal" --no-score-cache 2>"$out/serve.log" & s1=$!
"$venv/bin/python" Cluster/bench/serve_peer.py "$feeds" "$night/world" $p2 "$out/peer-events.csv" \
  "$night/ranker.h5" 2>"$out/peer.log" & s2=$!  # numpy's BLAS keeps its default threads (the peer's best)
serve $p3 "$out/wal-cached" 2>"$out/serve-cached.log" & s3=$!
trap 'kill $s1 $s2 $s3 2>/dev/null || true' EXIT
for port in $p1 $p2 $p3; do
  for _ in $(seq 1 300); do curl -sf "localhost:$port/v1/feed/0?k=1" >/dev/null && break; sleep 0.2; done
done
# Every user's session: 3 saves of pins of its feed; then the same answer from both for user 7.
"$venv/bin/python" - "$p1" "$p2" "$p3" "$users" <<'PY'
import json, sys, urllib.request
ports, users = sys.argv[1:4], int(sys.argv[4])
def call(port, path, body=None):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body and json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r))
first = {}
for u in range(users):
    try:
        first[u] = [call(port, f"/v1/feed/{u}?k=50")["pins"] for port in ports][0]
    except Exception:  # noqa: BLE001 (a user without a feed)
        pass
batch = []
for u, pins in first.items():
    batch += [{"user": u, "pin": p, "type": "save", "id": f"warm-{u}-{i}"} for i, p in enumerate(pins[5:20:5])]
for port in ports:
    for i in range(0, len(batch), 300):
        call(port, "/v1/events", {"events": batch[i:i + 300]})
for u in first:  # the kept re-scorings of the third server (default cache) start warm
    call(ports[2], f"/v1/feed/{u}?k=20")
a, b = call(ports[0], "/v1/feed/7?k=50"), call(ports[1], "/v1/feed/7?k=50")
sa = {it["pin"]: it["score"] for it in a["items"]}
sb = {it["pin"]: it["score"] for it in b["items"]}
diff = max(abs(sa[p] - sb[p]) for p in sa if p in sb)
if a["pins"] != b["pins"] or diff > 1e-4:
    sys.exit(f"serve.sh: Mosaic and the peer re-score user 7 differently: {a['pins'][:10]} vs {b['pins'][:10]}, "
             f"max score difference {diff:.2e}")
print(f"check: user 7, {len(a['pins'])} pins, same order, max score difference {diff:.1e}; "
      f"{len(batch)} saves posted to each server first", file=sys.stderr)
PY
done_lua='done = function(s, latency, r) io.write(string.format("P999 %.2fms\n", latency:percentile(99.9) / 1000)) end'
cat > "$out/get.lua" <<LUA
math.randomseed(7)
request = function() return wrk.format("GET", "/v1/feed/" .. math.random(0, $users - 1) .. "?k=20") end
$done_lua
LUA
events_lua() {  # $1: extra Lua (a delay)
  cat <<LUA
math.randomseed(11)
local types = {"impression", "closeup", "click", "save", "hide"}
request = function()
  local ev = {}
  for i = 1, 10 do
    ev[i] = string.format('{"user":%d,"pin":%d,"type":"%s"}', math.random(0, $users - 1), math.random(0, 20000), types[(i % 5) + 1])
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, '{"events":[' .. table.concat(ev, ",") .. ']}')
end
$1
$done_lua
LUA
}
events_lua "" > "$out/events.lua"
events_lua "delay = function() return 10 end" > "$out/events-paced.lua"
run() {  # port script connections [with-events] → "rps p50 p99 p99.9 non2xx bg-requests"
  local bg=""
  if [ -n "${4:-}" ]; then
    wrk -t1 -c1 -d"$duration" -s "$out/events-paced.lua" "http://127.0.0.1:$1" > "$out/wrk-bg.txt" & bg=$!
  fi
  wrk -t1 -c"$3" -d"$duration" --latency -s "$2" "http://127.0.0.1:$1" > "$out/wrk.txt"
  [ -z "$bg" ] || wait $bg
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/wrk.txt")
  p999=$(awk '$1=="P999" {print $2}' "$out/wrk.txt")
  bad=$(awk '/Non-2xx/ {print $NF}' "$out/wrk.txt"); bad=${bad:-0}
  bgr=0; [ -z "$bg" ] || bgr=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-bg.txt")
  echo "$rps $p50 $p99 $p999 $bad $bgr"
}
echo "serving shard: $(grep ranker "$out/serve.log" | head -1 | cut -c1-200)"
echo "$(grep '^peer' "$out/peer.log"), Python $("$venv/bin/python" -c 'import sys, uvicorn, starlette, numpy; print(sys.version.split()[0], "uvicorn", uvicorn.__version__, "starlette", starlette.__version__, "numpy", numpy.__version__)')"
echo "load: wrk 1 thread, $duration per run, random users of $users; events posted beside the GETs: 1 connection, 10 events per request, one request per 10 ms; load average $(cut -d' ' -f1 /proc/loadavg)"
echo ""
echo "| request | Mosaic req/s | p50 | p99 | p99.9 | peer req/s | p50 | p99 | p99.9 | Mosaic / peer (req/s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for conns in 1 8 32; do
  read -r r1 a1 b1 c1 e1 g1 < <(run $p1 "$out/get.lua" $conns 1)
  read -r r2 a2 b2 c2 e2 g2 < <(run $p2 "$out/get.lua" $conns 1)
  [ "$e1" = 0 ] && [ "$e2" = 0 ] || echo "serve.sh: non-2xx answers: Mosaic $e1, peer $e2" >&2
  echo "| GET /v1/feed/{user}?k=20, every request re-scores 500 candidates, $conns connection(s), events posted at $g1 / $g2 req/s | $r1 | $a1 | $b1 | $c1 | $r2 | $a2 | $b2 | $c2 | $(awk -v a="$r1" -v b="$r2" 'BEGIN{printf "%.2f×", a/b}') |"
done
for conns in 8 32; do
  read -r r1 a1 b1 c1 e1 g1 < <(run $p3 "$out/get.lua" $conns 1)
  echo "| GET, re-scoring reused until the session's engagements change, $conns connections, events at $g1 req/s ($e1 non-2xx) | $r1 | $a1 | $b1 | $c1 | — | — | — | — | — |"
done
# Hot swaps: reload between the two runs every 3 s while wrk asks for feeds (and events are posted).
for port in $p1 $p3; do
  : > "$out/swaps.log"
  ( for i in $(seq 1 10); do
      sleep 3
      ln -sfn "runs/${runs[i % 2]}" "$feeds/.current-tmp" && mv -T "$feeds/.current-tmp" "$feeds/current"
      curl -s -X POST -H "Authorization: Bearer bench" "localhost:$port/admin/reload" >> "$out/swaps.log"; echo >> "$out/swaps.log"
    done ) & swapper=$!
  read -r r1 a1 b1 c1 e1 g1 < <(duration=15s run $port "$out/get.lua" 8 1)
  kill $swapper 2>/dev/null || true; wait $swapper 2>/dev/null || true
  swaps=$(grep -c '"outcome":"swapped"' "$out/swaps.log" || true)
  mode="every request re-scores"; [ $port = $p1 ] || mode="re-scoring reused"
  echo "| GET, $mode, 8 connections, across $swaps hot swaps ($e1 non-2xx), events at $g1 req/s | $r1 | $a1 | $b1 | $c1 | — | — | — | — | — |"
done
read -r r1 a1 b1 c1 e1 g1 < <(run $p1 "$out/events.lua" 16)
read -r r2 a2 b2 c2 e2 g2 < <(run $p2 "$out/events.lua" 16)
echo "| POST /v1/events (10 events, durable; events/s = 10 × req/s) | $r1 | $a1 | $b1 | $c1 | $r2 | $a2 | $b2 | $c2 | $(awk -v a="$r1" -v b="$r2" 'BEGIN{printf "%.2f×", a/b}') |"
echo ""
for port in $p1 $p3; do
  m=$(curl -s localhost:$port/metrics)
  echo "port $port: re-scorings $(echo "$m" | awk '$1=="mosaic_rescore_seconds_count" {print $2}') (mean $(echo "$m" | awk '$1=="mosaic_rescore_seconds_sum" {s=$2} $1=="mosaic_rescore_seconds_count" {c=$2} END {printf "%.2f ms", 1000*s/c}')), cache hits $(echo "$m" | awk '$1=="mosaic_rescore_cache_hits_total" {print $2}'), events acknowledged $(echo "$m" | awk '$1=="mosaic_events_accepted_total" {print $2}'), fsyncs $(echo "$m" | awk '$1=="mosaic_wal_fsync_seconds_count" {print $2}')"
done
echo "load average at the end: $(cut -d' ' -f1 /proc/loadavg)"
