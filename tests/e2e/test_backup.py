"""`courier backup` while the server takes uploads and releases, then `courier restore` and a
server on the restored folder (issue 10): the same apps, packages, tasks and audit chain, and
byte-identical .amr files. Every backup taken under load restores."""
import json
import os
import subprocess
import threading
import time
import urllib.request

from conftest import BINARY, Server
from test_live import api, prepare, upload_file
from zips import sample


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_backups_taken_under_load_restore_the_same_service(server, tmp_path):
    token = prepare(server)
    release = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release").stdout.strip()
    zip_path = sample(str(tmp_path / "p.zip"))
    stop = threading.Event()
    errors = []
    done = [0]

    def load():
        n = 0
        while not stop.is_set() and n < 200:
            n += 1
            version = f"1.0.{n}.0"
            status, body = upload_file(server, token, zip_path, version)
            if status != 201:
                errors.append((version, status, body))
                return
            status, task = api(server, release, "POST", f"/api/v1/apps/20171228/packages/{version}/tasks",
                               json.dumps({"type": "official", "description": f"release {n}"}))
            if status != 201:
                errors.append((version, status, task))
                return
            done[0] = n

    worker = threading.Thread(target=load)
    worker.start()
    backups = []
    try:
        for i in range(4):
            while done[0] < 3 * (i + 1) and not errors and worker.is_alive():
                time.sleep(0.05)   # each backup is taken while releases keep coming
            target = str(tmp_path / f"backup-{i}")
            r = subprocess.run([BINARY, "backup", target, "--data", server.data], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            backups.append(target)
    finally:
        stop.set()
        worker.join()
    assert not errors, errors
    assert done[0] >= 12, "uploads and releases went on during the backups"
    for i, backup in enumerate(backups):
        manifest = json.load(open(os.path.join(backup, "manifest.json")))
        restored = str(tmp_path / f"restored-{i}")
        r = subprocess.run([BINARY, "restore", backup, "--data", restored], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        verify = subprocess.run([BINARY, "audit", "verify", "--data", restored], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout
        copy = Server(restored).start()
        try:
            status, app = api(copy, token, "GET", "/api/v1/apps/20171228")
            assert status == 200
            assert len(app["packages"]) == manifest["packages"], "the copy serves what the backup holds"
            for p in app["packages"][:5]:
                path = "/packages/20171228/" + p["version"] + ".amr"
                assert get(copy.url + path) == get(server.url + path), "byte-identical .amr"
        finally:
            copy.stop()

    # A damaged backup is refused and restores nothing.
    blob = next(f["path"] for f in json.load(open(os.path.join(backups[0], "manifest.json")))["files"] if f["path"].startswith("blobs/"))
    with open(os.path.join(backups[0], blob), "r+b") as f:
        f.seek(100)
        f.write(b"\x00damaged")
    r = subprocess.run([BINARY, "restore", backups[0], "--data", str(tmp_path / "never")], capture_output=True, text=True)
    assert r.returncode != 0 and blob in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "never") or not os.listdir(tmp_path / "never")
