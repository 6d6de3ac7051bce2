#!/usr/bin/env bash
# The device (issue 17), each against a reference measured in the same run:
# - install: the real bundle (~2,500 files) from its signed .amr, verification included
#   (`courier device seed`), against `unzip` of the same zip into a folder (goal <= 1.5x);
# - proxy: an installed file served by `courier device`'s proxy, against nginx serving the
#   same file (wrk, 50 connections; goal >= 0.5x);
# - memory: peak RSS of installing a 200 MB package (goal < 100 MB).
# Needs a release build (make release).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/courier
[ -x "$BIN" ] || { echo "build first: make release" >&2; exit 1; }
for tool in hyperfine unzip zip openssl wrk nginx; do
  command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine unzip zip openssl wrk nginx-light; break; }
done
WORK=${WORK:-$(mktemp -d /tmp/courier-device-bench.XXXXXX)}
mkdir -p "$WORK"
ID=20171228
SECONDS_EACH=${SECONDS_EACH:-10}
source bench/bundle.sh
make_bundle $ID
openssl genrsa -out "$WORK/key.pem" 2048 2>/dev/null
openssl rsa -in "$WORK/key.pem" -pubout -out "$WORK/pub.pem" 2>/dev/null

# A preset (h5_json.json) describing a .amr: what an app build ships.
preset() {  # preset AMR OUT
  python3 - "$1" "$2" "$ID" <<'PY'
import hashlib, json, os, sys
amr, out, app = sys.argv[1], sys.argv[2], sys.argv[3]
sha = hashlib.sha256(open(amr, "rb").read()).hexdigest()
entry = {"app_id": app, "name": "bench", "version": "0.0.0.1", "package_size": os.path.getsize(amr), "package_sha256": sha,
         "package_url": f"http://127.0.0.1/packages/{app}/0.0.0.1.amr", "fallback_base_url": f"http://127.0.0.1/fallback/{app}/0.0.0.1/",
         "vhost": f"https://{app}.h5app.example.com", "install_type": "preload", "auto_install": True, "rollback": False}
json.dump({"config": {"updateReqRate": 1800}, "data": [entry]}, open(out, "w"))
PY
}

mkdir -p "$WORK/shipped"
$BIN check "$WORK/bundle.zip" --app-id $ID --key "$WORK/key.pem" --out "$WORK/shipped/$ID.amr" | tail -1
preset "$WORK/shipped/$ID.amr" "$WORK/shipped/h5_json.json"
FILES=$(unzip -Z1 "$WORK/bundle.zip" | grep -vc '/$')
echo "bundle: $FILES files, $(du -m "$WORK/bundle.zip" | cut -f1) MB zipped"
hyperfine --warmup 2 --runs 10 --export-json "$WORK/install.json" --prepare "rm -rf $WORK/unz $WORK/dev" \
  -n "unzip" "unzip -q $WORK/bundle.zip -d $WORK/unz" \
  -n "courier device seed (verify + install)" "$BIN device seed --data $WORK/dev --public-key $WORK/pub.pem $WORK/shipped/h5_json.json"
python3 - "$WORK/install.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
u, c = r["unzip"], r["courier device seed (verify + install)"]
print(f"install: unzip {u*1000:.0f} ms, courier device {c*1000:.0f} ms: ratio {c/u:.2f}x (goal <= 1.5x)")
PY

# The proxy against nginx, on the same file (hyperfine's last preparation removed both folders).
rm -rf "$WORK/unz" "$WORK/dev"
unzip -q "$WORK/bundle.zip" -d "$WORK/unz"
$BIN device seed --data "$WORK/dev" --public-key "$WORK/pub.pem" "$WORK/shipped/h5_json.json" >/dev/null
FILE=www/jquery/jquery.min.js
PROXY_PORT=${PROXY_PORT:-18181}
NGINX_PORT=${NGINX_PORT:-18182}
mkdir -p "$WORK/nginx"
chmod -R a+rX "$WORK/unz"; chmod a+x "$WORK"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  include /etc/nginx/mime.types;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/unz/$ID; }
}
CONF
$BIN device --server http://127.0.0.1:9 --data "$WORK/dev" --public-key "$WORK/pub.pem" --proxy-port $PROXY_PORT >"$WORK/device.log" 2>&1 &
DEVICE=$!
trap 'kill $DEVICE 2>/dev/null; [ -f "$WORK/nginx.pid" ] && kill $(cat "$WORK/nginx.pid") 2>/dev/null; true' EXIT
nginx -c "$WORK/nginx.conf"
for _ in $(seq 100); do curl -s -o /dev/null -H "Host: $ID.h5app.example.com" "http://127.0.0.1:$PROXY_PORT/$FILE" && break; sleep 0.1; done
curl -s -D - -o /dev/null -H "Host: $ID.h5app.example.com" "http://127.0.0.1:$PROXY_PORT/$FILE" | grep -i x-courier-source
wrk -t1 -c50 -d"${SECONDS_EACH}s" --latency -H "Host: $ID.h5app.example.com" "http://127.0.0.1:$PROXY_PORT/$FILE" >"$WORK/proxy.txt"
wrk -t1 -c50 -d"${SECONDS_EACH}s" --latency "http://127.0.0.1:$NGINX_PORT/$FILE" >"$WORK/nginx.txt"
python3 - "$WORK/proxy.txt" "$WORK/nginx.txt" <<'PY'
import re, sys
def read(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return rps, float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)], int(errors.group(1)) if errors else 0
p, n = read(sys.argv[1]), read(sys.argv[2])
print(f"proxy: courier device {p[0]:.0f} req/s (p99 {p[1]:.2f} ms), nginx {n[0]:.0f} req/s (p99 {n[1]:.2f} ms): ratio {p[0]/n[0]:.2f}x (goal >= 0.5x)")
assert p[2] == 0 and n[2] == 0, "every request must succeed"
PY

# Peak memory of installing a 200 MB package.
python3 - "$WORK/big.zip" "$ID" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
    z.writestr(f"{sys.argv[2]}/www/index.html", "<h1>big</h1>")
    for i in range(25):
        z.writestr(f"{sys.argv[2]}/www/assets/blob{i}.bin", os.urandom(8 << 20))
PY
mkdir -p "$WORK/big"
$BIN check "$WORK/big.zip" --app-id $ID --key "$WORK/key.pem" --out "$WORK/big/$ID.amr" | tail -1
preset "$WORK/big/$ID.amr" "$WORK/big/h5_json.json"
rm -rf "$WORK/bigdev"
/usr/bin/time -v $BIN device seed --data "$WORK/bigdev" --public-key "$WORK/pub.pem" "$WORK/big/h5_json.json" 2>"$WORK/time.txt" | tail -1
RSS=$(grep "Maximum resident set size" "$WORK/time.txt" | awk '{print $NF}')
echo "memory: installing a $(du -m "$WORK/big/$ID.amr" | cut -f1) MB package peaked at $((RSS / 1024)) MB RSS (goal < 100 MB)"
[ $((RSS / 1024)) -lt 100 ]
