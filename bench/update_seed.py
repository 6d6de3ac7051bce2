"""Loads a Courier for bench/update-check.sh through its JSON API: 1,000 apps each with an official
release, 100 of them with a newer grayscale release (rules, whitelists), a 100,000-entry user
whitelist and a regex whitelist. Then writes wrk's request bodies (a realistic mix) as Lua."""
import io
import json
import random
import sys
import urllib.request
import zipfile

URL, TOKEN, LUA = sys.argv[1], sys.argv[2], sys.argv[3]
random.seed(7)


def call(method, path, body=None, content_type="application/json"):
    req = urllib.request.Request(URL + path, data=body, method=method,
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def package(app_id, version):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{app_id}/www/index.html", f"<h1>{app_id} {version}</h1>")
        z.writestr(f"{app_id}/www/app.js", "console.log(1);\n" * 50)
    boundary = "BenchBoundary"
    fields = {"version": version, "type": "normal", "androidMin": "9.0", "iosMin": "13", "mainUrl": "/www/index.html",
              "extendInfo": '{"asyncReqRate":"1800"}', "downloadPolicy": "all", "installPolicy": "preload"}
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items())
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\n\r\n'.encode() + buf.getvalue()
    body += f"\r\n--{boundary}--\r\n".encode()
    call("POST", f"/api/v1/apps/{app_id}/packages", body, "multipart/form-data; boundary=" + boundary)


call("PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}).encode())
apps = [str(30000000 + i) for i in range(1000)]
for n, app_id in enumerate(apps):
    call("POST", "/api/v1/apps", json.dumps({"id": app_id, "name": f"App {n}"}).encode())
    package(app_id, "1.0.0.1")
    call("POST", f"/api/v1/apps/{app_id}/packages/1.0.0.1/tasks", json.dumps({"type": "official", "description": "First"}).encode())
    if n % 100 == 0:
        print(f"  {n} apps", file=sys.stderr)
users = [f"user-{i}" for i in range(100_000)]
big = call("POST", "/api/v1/whitelists", json.dumps({"name": "staff", "kind": "user", "values": users}).encode())
regex = call("POST", "/api/v1/whitelists", json.dumps({"name": "qa", "kind": "regex", "values": ["qa-[0-9]+", "tester-.*"]}).encode())
for n, app_id in enumerate(apps[:100]):
    package(app_id, "1.0.0.2")
    task = {"type": "gray", "description": "Beta",
            "rules": [{"field": "city", "op": "in", "values": ["Hangzhou", "Shanghai", "Beijing"]},
                      {"field": "osVersion", "op": "between", "values": ["9", "17"]}]}
    task.update({"mode": "whitelist", "whitelistIds": [big["id"], regex["id"]]} if n % 2 == 0 else {"mode": "percentage", "percentage": 20})
    call("POST", f"/api/v1/apps/{app_id}/packages/1.0.0.2/tasks", json.dumps(task).encode())

bodies = []
for i in range(2000):
    installed = [{"id": a, "version": random.choice(["0", "1.0.0.1", "1.0.0.1", "1.0.0.2"])} for a in random.sample(apps[:150], 4) + random.sample(apps, 6)]
    user = random.choice(users) if random.random() < 0.3 else random.choice([f"qa-{i}", f"guest-{i}"])
    bodies.append(json.dumps({"platform": random.choice(["android", "ios"]), "clientVersion": random.choice(["10.2.3", "14.1", "16"]),
                              "deviceId": f"device-{i}", "userId": user, "model": "Pixel 8", "osVersion": random.choice(["12", "14", "16.4"]),
                              "network": "WIFI", "city": random.choice(["Hangzhou", "Shanghai", "Chengdu"]), "apps": installed}))
with open(LUA, "w") as f:
    f.write("local bodies = {\n")
    for b in bodies:
        f.write("  " + json.dumps(b) + ",\n")
    f.write("}\nwrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n")
    # Formatted once, so that wrk spends its time sending, as it does for nginx's plain GET.
    f.write("local requests = {}\nfor i, b in ipairs(bodies) do requests[i] = wrk.format(nil, nil, nil, b) end\n")
    f.write("request = function() return requests[math.random(#requests)] end\n")
print(bodies[0])
