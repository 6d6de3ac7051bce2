#!/usr/bin/env bash
# Adoption counting's memory (issue 21): one app with a released version, then update checks
# from 1,000,000 distinct devices (wrk, each request a new device ID). Prints the server's
# resident memory after a warm-up with 1,000 devices and after the million, the sketches held
# in memory, and the adoption the console shows (an estimate: it should be within a few % of
# 1,000,000). Needs a release build (make release).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COURIER_BIN:-.build/release/courier}
[ -x "$BIN" ] || { echo "build first: make release" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
DEVICES=${DEVICES:-1000000}
WORK=$(mktemp -d /tmp/courier-adoption-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "bench-password" | "$BIN" user add bench --role admin --data "$WORK/data" >/dev/null
TOKEN=$("$BIN" token create --user bench --scope read,upload,release,admin --data "$WORK/data")
"$BIN" serve --data "$WORK/data" --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/login" && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
auth=(-H "Authorization: Bearer $TOKEN")
curl -sf "${auth[@]}" -X PUT -H 'Content-Type: application/json' -d '{"virtualDomain":"h5app.example.com"}' "$URL/api/v1/settings" >/dev/null
curl -sf "${auth[@]}" -X POST -H 'Content-Type: application/json' -d '{"id":"20171228","name":"Checkout"}' "$URL/api/v1/apps" >/dev/null
mkdir -p "$WORK/app/20171228/www"; echo '<!doctype html><h1>hi</h1>' >"$WORK/app/20171228/www/index.html"
COURIER_SERVER=$URL COURIER_TOKEN=$TOKEN "$BIN" push --app 20171228 --version 1.0.0.1 --main-url /www/index.html --android-min 1.0 \
  --release official "$WORK/app" >/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }
script() {   # $1: how many distinct devices, cycled
  cat <<LUA
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"platform":"android","clientVersion":"10.2.3","deviceId":"device-%d","apps":[{"id":"20171228","version":"1.0.0.1"}]}', counter % $1)
  return wrk.format("POST", "/client/v1/update", {["Content-Type"]="application/json"}, body)
end
LUA
}
script 1000 >"$WORK/warm.lua"; script "$DEVICES" >"$WORK/million.lua"
wrk -t1 -c20 -d5s -s "$WORK/warm.lua" "$URL/client/v1/update" >/dev/null
BEFORE=$(rss)
START=$(date +%s)
# One thread, so the counter runs once through every ID; long enough for the million.
wrk -t1 -c50 -d"${WRK_SECONDS:-120}s" -s "$WORK/million.lua" "$URL/client/v1/update" >"$WORK/wrk.txt"
AFTER=$(rss)
REQUESTS=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
echo "requests: $REQUESTS in $(( $(date +%s) - START )) s ($(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt") per second)"
[ "$REQUESTS" -ge "$DEVICES" ] || echo "warning: fewer requests than devices: raise WRK_SECONDS"
SKETCHES=$(curl -s "$URL/metrics" | awk '/^courier_adoption_sketches / {print $2}')
echo "resident memory: ${BEFORE} kB after 1,000 devices, ${AFTER} kB after $DEVICES: +$(( (AFTER - BEFORE) / 1024 )) MB (goal <= 20 MB)"
echo "sketches in memory: ${SKETCHES:-?} (4 KB each)"
echo "waiting for the once-a-minute flush…"
for _ in $(seq 90); do
  A=$(curl -s "${auth[@]}" "$URL/api/v1/apps/20171228/adoption")
  D=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); print(a["versions"][0]["devices"] if a["versions"] else 0)' "$A")
  [ "$D" -gt 1000 ] && break
  sleep 1
done
python3 -c 'import sys; d, n = int(sys.argv[1]), int(sys.argv[2]); print(f"adoption shown: {d} devices on 1.0.0.1 for {n} distinct ({(d - n) / n * 100:+.2f} %)")' "$D" "$DEVICES"
