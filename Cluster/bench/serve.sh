#!/usr/bin/env bash
# Benchmark of one serving shard (`mosaic-serve`) beside a Python peer serving the same API over
# the same published feeds (Cluster/bench/serve_peer.py: Starlette on uvicorn, one worker).
# Load: wrk on this machine (1 thread, 16 connections, 8 s per run), random users of the world;
# GET /v1/feed/{user}?k=20 (also at 1 and 32 connections, and at 8 while POST /v1/events runs on
# 8 more) and POST /v1/feed/{user}?k=20 with 5 session events; POST /v1/events
# with 10 events (acknowledged after the fsync of the write-ahead log; the peer fsyncs per
# request); GET feed across hot swaps (POST /admin/reload between two published runs every
# second; Mosaic only). Prints requests/s, p50, p99 and p99.9 for each, and Mosaic / peer.
#
#   Cluster/bench/serve.sh            (OUT=folder for the world and feeds; USERS=2000)
#
# Creates `.venv-bench` (gitignored) with uvicorn, starlette, h5py, numpy; installs wrk with apt
# when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-out/bench-serve}"
users="${USERS:-2000}"
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
if [ ! -e "$out/feeds/current" ]; then
  rm -rf "$out"
  OPENBLAS_NUM_THREADS=1 $M generate --users "$users" --out "$out/world" >/dev/null
  OPENBLAS_NUM_THREADS=1 $M feed precompute --world "$out/world" --out "$out/feeds" >/dev/null
fi
# A second run beside the first, for the hot swaps.
[ -d "$out/feeds/runs/feeds-swap" ] || OPENBLAS_NUM_THREADS=1 $M feed precompute --world "$out/world" \
  --out "$out/feeds" --run-id feeds-swap >/dev/null
runs=("$(basename "$(readlink "$out/feeds/current")")" feeds-swap)
[ "${runs[0]}" != feeds-swap ] || runs[0]=$(ls "$out/feeds/runs" | grep -v '^feeds-swap$' | head -1)
ln -sfn "runs/${runs[0]}" "$out/feeds/.current-tmp" && mv -T "$out/feeds/.current-tmp" "$out/feeds/current"
rm -rf "$out/wal" "$out/peer-events.csv" "$out/swaps.log"
p1=18181; p2=18182
MOSAIC_ADMIN_TOKEN=bench .build/release/mosaic-serve --feeds "$out/feeds" --world "$out/world" --port $p1 \
  --wal-dir "$out/wal" --watch-interval 0 2>"$out/serve.log" &
s1=$!
"$venv/bin/python" Cluster/bench/serve_peer.py "$out/feeds" "$out/world" $p2 "$out/peer-events.csv" 2>"$out/peer.log" &
s2=$!
trap 'kill $s1 $s2 2>/dev/null || true' EXIT
for port in $p1 $p2; do
  for _ in $(seq 1 100); do curl -sf "localhost:$port/v1/feed/0?k=1" >/dev/null && break; sleep 0.2; done
done
# The same answers from both (the API is the contract).
a=$(curl -s "localhost:$p1/v1/feed/7?k=10" | tr -d ' ' | sed 's/.*"pins":\(\[[^]]*\]\).*/\1/')
b=$(curl -s "localhost:$p2/v1/feed/7?k=10" | tr -d ' ' | sed 's/.*"pins":\(\[[^]]*\]\).*/\1/')
[ "$a" = "$b" ] || { echo "serve.sh: Mosaic and the peer disagree on user 7: $a vs $b" >&2; exit 1; }
pins=$(curl -s "localhost:$p1/v1/feed/7?k=40" | sed 's/.*"pins":\[\([^]]*\)\].*/\1/')
ev=$(echo "$pins" | tr ',' '\n' | sed -n '2p;5p;9p;14p;20p' | awk 'BEGIN{t[0]="impression";t[1]="closeup";t[2]="save";t[3]="hide";t[4]="click"} {printf "%s{\"pin\":%s,\"type\":\"%s\"}", (NR>1?",":""), $1, t[(NR-1)%5]}')
body="{\"events\":[$ev]}"
json="Content-Type: application/json"
a=$(curl -s -X POST "localhost:$p1/v1/feed/7?k=10" -H "$json" -d "$body" | tr -d ' ' | sed 's/.*"pins":\(\[[^]]*\]\).*/\1/')
b=$(curl -s -X POST "localhost:$p2/v1/feed/7?k=10" -H "$json" -d "$body" | tr -d ' ' | sed 's/.*"pins":\(\[[^]]*\]\).*/\1/')
[ "$a" = "$b" ] || { echo "serve.sh: Mosaic and the peer re-rank user 7 differently: $a vs $b" >&2; exit 1; }
# Every script also prints wrk's p99.9 (its --latency table stops at p99).
done_lua='done = function(s, latency, r) io.write(string.format("P999 %.2fms\n", latency:percentile(99.9) / 1000)) end'
cat > "$out/get.lua" <<LUA
math.randomseed(7)
request = function() return wrk.format("GET", "/v1/feed/" .. math.random(0, $users - 1) .. "?k=20") end
$done_lua
LUA
cat > "$out/post.lua" <<LUA
math.randomseed(7)
local body = '$body'
request = function()
  return wrk.format("POST", "/v1/feed/" .. math.random(0, $users - 1) .. "?k=20", {["Content-Type"] = "application/json"}, body)
end
$done_lua
LUA
cat > "$out/events.lua" <<LUA
math.randomseed(7)
local types = {"impression", "closeup", "click", "save", "hide"}
request = function()
  local ev = {}
  for i = 1, 10 do
    ev[i] = string.format('{"user":%d,"pin":%d,"type":"%s"}', math.random(0, $users - 1), math.random(0, 20000), types[(i % 5) + 1])
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, '{"events":[' .. table.concat(ev, ",") .. ']}')
end
$done_lua
LUA
run() {  # port script [connections] [with-events] → "rps p50 p99 p99.9 non2xx"
  local bg=""
  if [ -n "${4:-}" ]; then
    wrk -t1 -c8 -d"$duration" -s "$out/events.lua" "http://127.0.0.1:$1" > "$out/wrk-bg.txt" & bg=$!
  fi
  wrk -t1 -c"${3:-16}" -d"$duration" --latency -s "$2" "http://127.0.0.1:$1" > "$out/wrk.txt"
  [ -z "$bg" ] || wait $bg
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/wrk.txt")
  p999=$(awk '$1=="P999" {print $2}' "$out/wrk.txt")
  bad=$(awk '/Non-2xx/ {print $NF}' "$out/wrk.txt"); bad=${bad:-0}
  echo "$rps $p50 $p99 $p999 $bad"
}
echo "serving shard: $(head -1 "$out/serve.log" | cut -c1-160)"
echo "$(grep '^peer' "$out/peer.log"), Python $("$venv/bin/python" -c 'import sys, uvicorn, starlette; print(sys.version.split()[0], "uvicorn", uvicorn.__version__, "starlette", starlette.__version__)')"
echo "load: wrk 1 thread, 16 connections unless said, $duration per run, random users of $users; load average $(cut -d' ' -f1 /proc/loadavg)"
echo ""
echo "| request | Mosaic req/s | p50 | p99 | p99.9 | peer req/s | p50 | p99 | p99.9 | Mosaic / peer (req/s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for kind in get get-c1 get-c32 post events mixed; do
  case $kind in
    get) script=get; conns=16; bg=""; label="GET /v1/feed/{user}?k=20" ;;
    get-c1) script=get; conns=1; bg=""; label="GET /v1/feed/{user}?k=20, 1 connection" ;;
    get-c32) script=get; conns=32; bg=""; label="GET /v1/feed/{user}?k=20, 32 connections" ;;
    post) script=post; conns=16; bg=""; label="POST /v1/feed/{user}?k=20 (5 session events)" ;;
    events) script=events; conns=16; bg=""; label="POST /v1/events (10 events, durable; events/s = 10 × req/s)" ;;
    mixed) script=get; conns=8; bg=1; label="GET /v1/feed/{user}?k=20, 8 connections, while POST /v1/events runs on 8 more" ;;
  esac
  read -r r1 a1 b1 c1 e1 < <(run $p1 "$out/$script.lua" $conns $bg)
  read -r r2 a2 b2 c2 e2 < <(run $p2 "$out/$script.lua" $conns $bg)
  [ "$e1" = 0 ] && [ "$e2" = 0 ] || echo "serve.sh: non-2xx answers: Mosaic $e1, peer $e2" >&2
  echo "| $label | $r1 | $a1 | $b1 | $c1 | $r2 | $a2 | $b2 | $c2 | $(awk -v a="$r1" -v b="$r2" 'BEGIN{printf "%.2f×", a/b}') |"
done
# Hot swaps: reload between the two runs every second while wrk asks for feeds.
( for i in $(seq 1 20); do
    sleep 1
    ln -sfn "runs/${runs[i % 2]}" "$out/feeds/.current-tmp" && mv -T "$out/feeds/.current-tmp" "$out/feeds/current"
    curl -s -X POST -H "Authorization: Bearer bench" "localhost:$p1/admin/reload" >> "$out/swaps.log"; echo >> "$out/swaps.log"
  done ) & swapper=$!
read -r r1 a1 b1 c1 e1 < <(run $p1 "$out/get.lua")
kill $swapper 2>/dev/null || true; wait $swapper 2>/dev/null || true
swaps=$(grep -c '"outcome":"swapped"' "$out/swaps.log" || true)
echo "| GET /v1/feed/{user}?k=20 across $swaps hot swaps ($e1 non-2xx) | $r1 | $a1 | $b1 | $c1 | — | — | — | — | — |"
echo ""
echo "events acknowledged: $(curl -s localhost:$p1/metrics | awk '$1=="mosaic_events_accepted_total" {print $2}'), fsyncs: $(curl -s localhost:$p1/metrics | awk '$1=="mosaic_wal_fsync_seconds_count" {print $2}')"
