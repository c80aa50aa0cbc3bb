#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build in release mode, run the
# nightly DAG (Jobs/nightly.dag) on the embedded default synthetic world, and serve its feeds:
#   world → graph, walks, PinSage, IVF index, two-tower (the night's models, trained on the
#   events before T0 = last event − 7 days) → every user's candidates from seven channels →
#   the ranker (trained on the impressions after T0) → ranked, re-ranked feeds, judged by the
#   world's truth on the held-out last day → the night published (manifest with checksums) →
#   the serving shard answers a user's feed over HTTP, then the next page after a save posted to
#   /v1/events (logged durably in out/nightly/serve-wal), then a new user's cold-start feed.
#   Cluster/quickstart.sh            (RANKS=N and USERS=N change the defaults; OUT the pipeline's
#                                     root; PORT the serving port, default 8080)
# Run again the same day, it skips every stage that is up to date and serves at once.
set -euo pipefail
cd "$(dirname "$0")/.."
ranks="${RANKS:-2}"
users="${USERS:-2000}"
out="${OUT:-out/nightly}"
port="${PORT:-8080}"
bash Cluster/install-deps.sh
swift build -c release
m=.build/release/mosaic
Cluster/mpirun-local.sh -np "$ranks" "$m" doctor
# The drift monitor reports but does not hold the night back here: a rerun with another USERS
# into the same root would otherwise (rightly) refuse to publish. Nightly jobs keep the default.
"$m" pipeline run Jobs/nightly.dag --root "$out" --ranks "$ranks" --set USERS="$users" \
  --set MONITOR_ON_WARNING=--no-fail-on-warning
"$m" pipeline status Jobs/nightly.dag --root "$out" --ranks "$ranks" --set USERS="$users" \
  --set MONITOR_ON_WARNING=--no-fail-on-warning >&2
night="$out/current"

# Serve the published feeds and ask for one user's feed, then post a save and ask again.
.build/release/mosaic-serve --feeds "$night/feeds" --world "$night/world" --port "$port" \
  --wal-dir "$out/serve-wal" > "$out/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
python3 - "$port" <<'PY'
import json, sys, time, urllib.error, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(100):
    try:
        health = json.load(urllib.request.urlopen(base + "/healthz"))
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("quickstart: the serving shard did not start (see serve.log)")
feed = None
for user in range(100):  # the first user with a published feed
    try:
        feed = json.load(urllib.request.urlopen(f"{base}/v1/feed/{user}?k=10"))
        break
    except urllib.error.HTTPError:
        continue
if feed is None:
    sys.exit("quickstart: no user among the first 100 has a feed")
print(f"\nserving shard: run {health['run']}, {health['users']} users")
print(f"GET /v1/feed/{user}?k=10 →", json.dumps(feed)[:400])
first = feed["pins"][0] if isinstance(feed, dict) and feed.get("pins") else None
if first is not None:
    body = json.dumps({"events": [{"user": user, "pin": first, "type": "save"}]}).encode()
    request = urllib.request.Request(f"{base}/v1/events", data=body, headers={"Content-Type": "application/json"})
    print(f"POST /v1/events (user {user} saves pin {first}) →", json.dumps(json.load(urllib.request.urlopen(request))))
    after = json.load(urllib.request.urlopen(f"{base}/v1/feed/{user}?k=10"))
    print(f"GET /v1/feed/{user}?k=10 (the next pins, re-ranked by the save) →", json.dumps(after)[:400])
new = json.load(urllib.request.urlopen(f"{base}/v1/feed/999999?k=5&country=FR&device=ios"))
print("GET /v1/feed/999999?k=5&country=FR&device=ios (a user without a feed) →", json.dumps(new))
PY
cat >&2 <<EOF

quickstart: done. The published night is $night/ (docs/artifacts.md; its stages:
  $m pipeline status --root $out). Serve it again with
  .build/release/mosaic-serve --feeds $night/feeds --world $night/world --port $port
and query it with
  curl 'http://127.0.0.1:$port/v1/feed/7?k=10'
(the server started here has been stopped).
EOF
