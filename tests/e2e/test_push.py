"""`courier push` against a live server (issue 9): a folder zipped on the fly, released to a
whitelist, offered by the update API to a listed user; exit codes 2, 3 and 4."""
import json
import os
import subprocess
import urllib.request

from conftest import BINARY
from test_live import api, prepare
from zips import sample


def push(server, token, *args, env=None):
    cmd = [BINARY, "push", "--server", server.url, "--token", token, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def update(server, user, installed="0"):
    body = json.dumps({"platform": "android", "clientVersion": "10.2.3", "deviceId": "d-" + user, "userId": user,
                       "apps": [{"id": "20171228", "version": installed}]}).encode()
    req = urllib.request.Request(server.url + "/client/v1/update", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return [e["version"] for e in json.load(r)["data"]]


def test_push_a_folder_and_release_it_to_a_whitelist(server, tmp_path):
    prepare(server)
    token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release", "--name", "CI").stdout.strip()
    assert api(server, token, "POST", "/api/v1/whitelists",
               json.dumps({"name": "beta", "kind": "user", "values": ["u-listed"]}))[0] == 201
    site = tmp_path / "dist"
    (site / "www" / "js").mkdir(parents=True)
    (site / "www" / "index.html").write_text("<!doctype html><title>Checkout</title><script src=js/app.js></script>")
    (site / "www" / "js" / "app.js").write_text("console.log('pushed');\n" * 2000)
    (site / "www" / "data.bin").write_bytes(os.urandom(3 << 20))
    notes = tmp_path / "notes.md"
    notes.write_text("# Pushed from CI\n\nFixes *checkout*.")

    r = push(server, token, "--app", "20171228", "--version", "1.0.0.1", "--android-min", "10.0", "--main-url", "/www/index.html",
             "--release", "gray", "--whitelist", "beta", "--notes", str(notes), str(site))
    assert r.returncode == 0, r.stderr
    assert f"{server.url}/apps/20171228/packages/1.0.0.1" in r.stdout
    assert f"{server.url}/tasks/" in r.stdout and "releasing" in r.stdout
    assert update(server, "u-listed") == ["1.0.0.1"], "a listed user is offered it"
    assert update(server, "u-other") == [], "others are not"

    # The next push takes the newest package's settings and version + 1; --json prints the answers.
    archive = tmp_path / "p.zip"
    sample(str(archive))
    r = push(server, token, "--app", "20171228", "--release", "official", "--json", str(archive))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["package"]["version"] == "1.0.0.2" and out["package"]["androidMin"] == "10.0", out
    assert out["task"]["type"] == "official" and out["task"]["status"] == "releasing"
    assert out["taskUrl"].startswith(server.url + "/tasks/")
    assert update(server, "u-other") == ["1.0.0.2"]

    # Exit codes: 2 bad input (nothing sent), 3 refused by the server, 4 network.
    before = api(server, token, "GET", "/api/v1/apps/20171228")[1]["packages"]
    assert push(server, token, "--app", "20171228", "--release", "gray", str(site)).returncode == 2, "gray needs a whitelist or a percentage"
    assert push(server, token, "--app", "2017", str(site)).returncode == 2
    assert push(server, token, "--app", "20171228", str(tmp_path / "missing")).returncode == 2
    refused = push(server, token, "--app", "20171228", "--version", "1.0.0.1", str(site))
    assert refused.returncode == 3 and "version" in refused.stderr, refused.stderr
    reader = server.courier("token", "create", "--user", "admin", "--scope", "read").stdout.strip()
    assert push(server, reader, "--app", "20171228", str(site)).returncode == 3, "no upload scope"
    assert push(server, token, "--app", "20171228", "--release", "gray", "--whitelist", "nope", str(site)).returncode == 3
    gone = subprocess.run([BINARY, "push", "--server", "http://127.0.0.1:1", "--token", token, "--app", "20171228", str(site)],
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 4, gone.stderr
    assert api(server, token, "GET", "/api/v1/apps/20171228")[1]["packages"] == before, "no failed push left a package"
