#!/usr/bin/env bash
# Patches (issue 18), on the real bundle (~2,500 files, MathJax, jQuery, Bootstrap) with one
# ~40 KB script changed from version to version:
# - size: the patch from the previous version against the full .amr (goal <= 2 %);
# - build time: the 5 patches to a newly released version (one from each of its 5 bases, built
#   in the background by the server) against one ingest of the bundle, both from the server's own
#   /metrics in the same run (goal <= 2x).
# Needs a release build (make release).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.build/release/courier
[ -x "$BIN" ] || { echo "build first: make release" >&2; exit 1; }
for tool in unzip zip; do
  command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip zip; break; }
done
WORK=${WORK:-$(mktemp -d /tmp/courier-patch-bench.XXXXXX)}
mkdir -p "$WORK"
ID=20171228
source bench/bundle.sh
make_bundle $ID
PORT=${PORT:-18291}
DATA="$WORK/data"
rm -rf "$DATA"
echo "bench-password-1" | "$BIN" user add admin --role admin --data "$DATA" >/dev/null
"$BIN" serve --data "$DATA" --port $PORT > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.2; done
TOKEN=$("$BIN" token create --user admin --scope read,upload,release,admin --data "$DATA")
python3 - "$WORK" "$PORT" "$TOKEN" "$ID" <<'PY'
import http.client, json, os, re, shutil, subprocess, sys, time, zipfile
work, port, token, app = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def call(method, path, body=None, headers=None, raw=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    h = {"Authorization": "Bearer " + token, **(headers or {})}
    if body is not None and not raw:
        body, h["Content-Type"] = json.dumps(body), "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    return r.status, data

def metrics():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    def value(name):
        m = re.search(r"^" + re.escape(name) + r"(\{[^}]*\})? ([0-9.e+-]+)$", text, re.M)
        return float(m.group(2)) if m else 0.0
    return {k: value(k) for k in ["courier_ingest_duration_seconds_sum", "courier_ingest_duration_seconds_count",
                                   "courier_patch_build_duration_seconds_sum", "courier_patch_build_duration_seconds_count"]}

assert call("PUT", "/api/v1/settings", {"virtualDomain": "h5app.example.com"})[0] == 200
assert call("POST", "/api/v1/settings/signing-key/generate")[0] == 201
assert call("POST", "/api/v1/apps", {"id": app, "name": "Bench"})[0] == 201

# The bundle, and a ~40 KB script of it that changes from version to version.
src = zipfile.ZipFile(os.path.join(work, "bundle.zip"))
names = [n for n in src.namelist() if not n.endswith("/")]
script = min((n for n in names if n.endswith(".js")), key=lambda n: abs(src.getinfo(n).file_size - 40_000))
print(f"bundle: {len(names)} files; the changing script: {script} ({src.getinfo(script).file_size} bytes)")

def version_zip(i):
    path = os.path.join(work, f"v{i}.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n in names:
            data = src.read(n)
            if n == script:
                data = data + f"\n// release {i}\n".encode()
            z.writestr(n, data)
    return path

def upload(i):
    path = version_zip(i)
    boundary = "BenchBoundary"
    fields = {"version": f"1.0.0.{i}", "type": "normal", "androidMin": "1.0", "downloadPolicy": "all", "installPolicy": "lazy"}
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items())
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.zip"\r\nContent-Type: application/zip\r\n\r\n'.encode()
    body = head + open(path, "rb").read() + f"\r\n--{boundary}--\r\n".encode()
    status, data = call("POST", f"/api/v1/apps/{app}/packages", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, raw=True)
    assert status == 201, data[:300]
    return json.loads(data)

def release(i):
    status, data = call("POST", f"/api/v1/apps/{app}/packages/1.0.0.{i}/tasks", {"type": "official"})
    assert status == 201, data

def settle(count):
    deadline = time.time() + 600
    while time.time() < deadline:
        if metrics()["courier_patch_build_duration_seconds_count"] >= count:
            return
        time.sleep(0.2)
    raise SystemExit("the patches were not built")

built = 0
for i in range(1, 6):            # five versions that reached clients: the bases
    upload(i)
    release(i)
    built += min(i - 1, 5)
    settle(built)
before = metrics()
full = upload(6)
after_ingest = metrics()
release(6)
settle(built + 5)
after = metrics()
ingest = (after_ingest["courier_ingest_duration_seconds_sum"] - before["courier_ingest_duration_seconds_sum"])
patches = after["courier_patch_build_duration_seconds_sum"] - before["courier_patch_build_duration_seconds_sum"]
n = after["courier_patch_build_duration_seconds_count"] - before["courier_patch_build_duration_seconds_count"]
req = {"platform": "android", "clientVersion": "10.0", "deviceId": "d", "apps": [{"id": app, "version": "1.0.0.5"}]}
status, data = call("POST", "/client/v1/update", req)
entry = json.loads(data)["data"][0]
share = entry["patch_size"] / entry["package_size"] * 100
print(f"patch from 1.0.0.5: {entry['patch_size']} bytes of a {entry['package_size']}-byte .amr: {share:.2f} % (goal <= 2 %)")
print(f"one ingest {ingest*1000:.0f} ms; {int(n)} patches to 1.0.0.6 from its bases {patches*1000:.0f} ms: {patches/ingest:.2f}x (goal <= 2x)")
PY
