#!/usr/bin/env bash
# The client update API under load (SPEC §4), against nginx serving a static JSON of the same
# size in the same run. Loads 1,000 apps each with an official release, 100 grayscale tasks with
# rules, a 100,000-entry user whitelist and a regex whitelist (bench/update_seed.py), then runs
# wrk (50 connections) against POST /client/v1/update with a realistic mix of requests.
# Needs a release build (make release). Prints requests/s, p99 and the ratio to nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COURIER_BIN:-.build/release/courier}
[ -x "$BIN" ] || { echo "build first: make release" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk; }
SECONDS_EACH=${SECONDS_EACH:-20}
WORK=$(mktemp -d /tmp/courier-update-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "bench-password" | "$BIN" user add bench --role admin --data "$WORK/data" >/dev/null
TOKEN=$("$BIN" token create --user bench --scope read,upload,release,admin --data "$WORK/data")
"$BIN" serve --data "$WORK/data" --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; [ -f "$WORK/nginx.pid" ] && kill $(cat "$WORK/nginx.pid") 2>/dev/null; true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/login" && break; sleep 0.1; done
echo "loading 1,000 apps, 100 grayscale tasks, 100,000 whitelist entries…"
SAMPLE=$(python3 bench/update_seed.py "http://127.0.0.1:$PORT" "$TOKEN" "$WORK/update.lua")
curl -s -X POST -H 'Content-Type: application/json' -d "$SAMPLE" "http://127.0.0.1:$PORT/client/v1/update" >"$WORK/answer.json"
SIZE=$(wc -c <"$WORK/answer.json")
echo "a typical answer: $SIZE bytes"
# The seed's 100 gray releases set the patch service building patches in the background, and
# the patches it records rebuild the snapshot (1,000 apps, 100,000 list entries: a second or
# more on PostgreSQL). The figure is the hot path's, so wait until neither a patch build nor a
# rebuild has run for three seconds (two minutes at most) before measuring.
python3 - "http://127.0.0.1:$PORT" <<'PY'
import sys, time, urllib.request
def counts():
    text = urllib.request.urlopen(sys.argv[1] + "/metrics", timeout=10).read().decode()
    def total(prefix):
        return sum(int(float(l.split()[-1])) for l in text.splitlines() if l.startswith(prefix))
    return total("courier_patch_build_duration_seconds_count"), total("courier_snapshot_rebuilds_total")
last, since, start = counts(), time.time(), time.time()
while time.time() - since < 3 and time.time() - start < 120:
    time.sleep(0.5)
    now = counts()
    if now != last:
        last, since = now, time.time()
print(f"background work settled: {last[0]} patches built, {last[1]} snapshot rebuilds before measuring ({time.time() - start:.0f} s)")
PY

mkdir -p "$WORK/www" "$WORK/nginx"
cp "$WORK/answer.json" "$WORK/www/update.json"
chmod -R a+rX "$WORK/www"; chmod a+x "$WORK"   # nginx's worker is not root
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; default_type application/json; }
}
CONF
nginx -c "$WORK/nginx.conf"

wrk -t1 -c50 -d"${SECONDS_EACH}s" --latency -s "$WORK/update.lua" "http://127.0.0.1:$PORT/client/v1/update" >"$WORK/courier.txt" &
WRK=$!
# A release in the middle of the run: the very next request after its answer sees it.
sleep $((SECONDS_EACH / 2))
python3 - "http://127.0.0.1:$PORT" "$TOKEN" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
def operate(task, op):
    req = urllib.request.Request(f"{url}/api/v1/tasks/{task}/{op}", data=b"", method="POST", headers={"Authorization": "Bearer " + token})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())["status"]
def answer():
    ask = {"platform": "android", "clientVersion": "10.2.3", "deviceId": "mid-run", "apps": [{"id": "30000500", "version": "0"}]}
    req = urllib.request.Request(url + "/client/v1/update", data=json.dumps(ask).encode(), headers={"Content-Type": "application/json"})
    return [e["version"] for e in json.loads(urllib.request.urlopen(req).read())["data"]]
# Task 501 is app 30000500's official release (the seed creates one per app, in order).
seen = [answer(), operate(501, "pause"), answer(), operate(501, "resume"), answer()]
print("change during the run:", seen)
assert seen == [["1.0.0.1"], "paused", [], "releasing", ["1.0.0.1"]], seen
PY
wait $WRK
cat "$WORK/courier.txt"
wrk -t1 -c50 -d"${SECONDS_EACH}s" --latency "http://127.0.0.1:$NGINX_PORT/update.json" | tee "$WORK/nginx.txt"
python3 - "$WORK/courier.txt" "$WORK/nginx.txt" <<'PY'
import re, sys
def read(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
    ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return rps, ms, int(errors.group(1)) if errors else 0
c, n = read(sys.argv[1]), read(sys.argv[2])
print(f"courier: {c[0]:.0f} req/s, p99 {c[1]:.2f} ms, non-2xx {c[2]}")
print(f"nginx:   {n[0]:.0f} req/s, p99 {n[1]:.2f} ms, non-2xx {n[2]}")
assert c[2] == 0 and n[2] == 0, "every request must succeed"
print(f"ratio:   {c[0] / n[0]:.2f}x nginx (goal >= 0.5x, p99 < 5 ms)")
PY

# COMPARE_TALLY=N: what counting update checks costs (SPEC §5, adoption). The same data, the
# server restarted N times with counting off and N times on, alternately, each run as long as
# the one above, so that both see the same machine; medians and the difference are printed.
# Twice: with the mix above (2,000 devices asking again and again, as devices do), and with
# every request from a device never seen before (the tally's worst case: each check raises
# registers in about eight sketches, and nothing is skipped as already counted).
if [ "${COMPARE_TALLY:-0}" -gt 0 ]; then
  sed '/^local requests = {}/,$d' "$WORK/update.lua" >"$WORK/fresh.lua"
  cat >>"$WORK/fresh.lua" <<'LUA'
local n, run = 0, math.random(1e9)
request = function()
  n = n + 1
  local b = bodies[math.random(#bodies)]:gsub('"deviceId": "device%-%d+"', '"deviceId": "fresh-' .. run .. '-' .. n .. '"', 1)
  return wrk.format(nil, nil, nil, b)
end
LUA
  for mix in update fresh; do
    for round in $(seq "$COMPARE_TALLY"); do
      for mode in off on; do
        kill $SERVER; wait $SERVER 2>/dev/null || true
        COURIER_TALLY=$mode "$BIN" serve --data "$WORK/data" --port "$PORT" >>"$WORK/server.log" 2>&1 &
        SERVER=$!
        for _ in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] && break; sleep 0.1; done
        wrk -t1 -c50 -d"${SECONDS_EACH}s" --latency -s "$WORK/$mix.lua" "http://127.0.0.1:$PORT/client/v1/update" >"$WORK/tally-$mix-$mode-$round.txt"
      done
    done
  done
  curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^courier_adoption_sketches' || true
  python3 - "$WORK" "$COMPARE_TALLY" <<'PY'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def read(path):
    t = open(path).read()
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
    assert "Non-2xx" not in t, "every request must succeed"
    return float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)), float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
for mix, words in (("update", "the mix above"), ("fresh", "every request a new device")):
    runs = {m: [read(f"{work}/tally-{mix}-{m}-{r}.txt") for r in range(1, rounds + 1)] for m in ("off", "on")}
    print(f"{words}:")
    for m in ("off", "on"):
        print(f"  counting {m:3}: " + ", ".join(f"{rps:.0f}" for rps, _ in runs[m]) + " req/s")
    off, on = (statistics.median(r[0] for r in runs[m]) for m in ("off", "on"))
    mean_off, mean_on = (statistics.mean(r[0] for r in runs[m]) for m in ("off", "on"))
    p_off, p_on = (statistics.median(r[1] for r in runs[m]) for m in ("off", "on"))
    ratios = [on_[0] / off_[0] for off_, on_ in zip(runs["off"], runs["on"])]
    print(f"  medians: off {off:.0f} req/s (p99 {p_off:.2f} ms), on {on:.0f} req/s (p99 {p_on:.2f} ms): counting costs {100 * (off - on) / off:.1f} %")
    print(f"  means: counting costs {100 * (mean_off - mean_on) / mean_off:.1f} %; median of the rounds' on/off {statistics.median(ratios):.3f} "
          f"(single rounds {min(ratios):.2f} to {max(ratios):.2f}); goal: at most 5 % on the mix above")
PY
fi
