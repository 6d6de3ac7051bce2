"""Crash tests with a real child process (issue 10): SIGKILL at a random moment during an upload,
an .amr build, a key replacement (re-signing every package), task operations, a batch-import
submission and a backup, 20 rounds each. After every restart: `PRAGMA integrity_check` is ok, no
package's blob is missing, no blob is orphaned, no temp file remains, the audit chain verifies,
and the change is either whole or absent."""
import base64
import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import zipfile

import pytest

from conftest import BINARY, PASSWORD, Server
from test_live import api, upload_file
from zips import sample

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "20"))


def many_files(path, files=400, size=20_000, app_id="20171228"):
    """A zip whose .amr build takes a while: many small files."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{app_id}/www/index.html", "<h1>many</h1>")
        for i in range(files):
            z.writestr(f"{app_id}/www/f/{i}.js", (f"// file {i}\n" + "x = 1;\n" * (size // 7)))
    return path


class Crashing:
    """A server on one data folder, killed and restarted round after round."""

    def __init__(self, tmp_path, args=(), env=None):
        self.data = tempfile.mkdtemp(prefix="courier-crash-")
        self.server = Server(self.data, args, env=env)
        self.server.courier("user", "add", "admin", "--role", "admin", stdin=PASSWORD + "\n")
        self.server.start()
        self.token = self.server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release,admin").stdout.strip()
        assert self.call("PUT", "/api/v1/settings", {"virtualDomain": "h5app.example.com"})[0] == 200
        assert self.call("POST", "/api/v1/settings/signing-key/generate")[0] == 201
        assert self.call("POST", "/api/v1/apps", {"id": "20171228", "name": "Checkout"})[0] == 201
        self.tmp = tmp_path
        self.versions = 0

    def call(self, method, path, body=None, content_type="application/json"):
        if body is not None and content_type == "application/json":
            body = json.dumps(body)
        return api(self.server, self.token, method, path, body, content_type)

    def next_version(self):
        self.versions += 1
        return f"2.0.{self.versions}.0"

    def kill_during(self, action, seconds):
        """Runs `action` in a thread and SIGKILLs the server after a random part of `seconds`."""
        errors = []

        def run():
            try:
                action()
            except Exception as e:  # the connection dies with the server: expected
                errors.append(e)
        t = threading.Thread(target=run)
        t.start()
        time.sleep(random.uniform(0, seconds))
        self.server.kill()
        t.join(60)

    def restart_and_check(self, round_label):
        self.server.start()
        self.check(round_label)

    @property
    def database(self):
        """The PostgreSQL URL, when the server runs on one (several-nodes mode)."""
        return (self.server.env or {}).get("COURIER_DATABASE")

    def sql(self, query):
        """Rows of `query` on the server's database (SQLite file or PostgreSQL)."""
        if self.database:
            out = subprocess.run(["psql", self.database, "-At", "-F", "\t", "-c", query], capture_output=True, text=True, check=True).stdout
            return [tuple(line.split("\t")) for line in out.splitlines() if line]
        db = sqlite3.connect(os.path.join(self.data, "courier.sqlite"))
        try:
            return [tuple(str(v) for v in r) for r in db.execute(query)]
        finally:
            db.close()

    def check(self, round_label):
        if not self.database:
            db = sqlite3.connect(os.path.join(self.data, "courier.sqlite"))
            try:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", round_label
            finally:
                db.close()
        rows = {r[0] for r in self.sql("SELECT blob FROM package UNION SELECT blob FROM patch WHERE blob IS NOT NULL")}
        folder = self.server.env["COURIER_BLOB_DIR"] if self.database else self.data
        on_disk = {}
        for root, _, names in os.walk(os.path.join(folder, "blobs")):
            for n in names:
                on_disk[n[:-4]] = os.path.join(root, n)
        assert rows <= set(on_disk), f"{round_label}: a package's blob is missing"
        assert set(on_disk) <= rows, f"{round_label}: orphaned blobs {set(on_disk) - rows}"
        for sha, path in on_disk.items():
            with open(path, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == sha, f"{round_label}: blob {sha} is half-written"
        assert not os.listdir(os.path.join(folder, "tmp")), f"{round_label}: temp files remain"
        verify = subprocess.run([BINARY, "audit", "verify", "--data", self.data], capture_output=True, text=True,
                                env=dict(os.environ, **(self.server.env or {})))
        assert verify.returncode == 0, f"{round_label}: {verify.stdout}"

    def packages(self):
        return self.call("GET", "/api/v1/apps/20171228")[1]["packages"]

    def stop(self):
        self.server.stop()


@pytest.fixture
def crashing(tmp_path):
    c = Crashing(tmp_path)
    yield c
    c.stop()


@pytest.fixture
def crashing_on_postgresql(tmp_path):
    """A node on PostgreSQL with its blob folder (issue 20's crash round)."""
    from test_nodes import fresh_database
    c = Crashing(tmp_path, env={"COURIER_DATABASE": fresh_database(), "COURIER_BLOB_DIR": str(tmp_path / "shared-blobs")})
    yield c
    c.stop()


def upload_rounds(c, path, label):
    start = time.time()
    assert upload_file(c.server, c.token, path, c.next_version())[0] == 201
    duration = time.time() - start
    cut = 0
    for i in range(ROUNDS):
        before = {p["version"] for p in c.packages()}
        version = c.next_version()
        c.kill_during(lambda: upload_file(c.server, c.token, path, version), duration)
        c.restart_and_check(f"{label} round {i}")
        after = {p["version"] for p in c.packages()}
        assert after - before in (set(), {version}), f"{label} round {i}: {after - before}"
        cut += version not in after
        if version in after:   # whole: its .amr is served and is what its row says
            p = next(p for p in c.packages() if p["version"] == version)
            import urllib.request
            with urllib.request.urlopen(c.server.url + f"/packages/20171228/{version}.amr", timeout=30) as r:
                assert hashlib.sha256(r.read()).hexdigest() == p["sha256"], f"{label} round {i}"
    assert cut > 0, f"{label}: no round was cut short; the kills came too late to test anything"


def test_sigkill_during_uploads(crashing, tmp_path):
    from zips import large
    upload_rounds(crashing, large(str(tmp_path / "big.zip"), 24), "upload")


def test_sigkill_during_uploads_on_postgresql(crashing_on_postgresql, tmp_path):
    """Killed mid-upload on PostgreSQL: the package is whole or absent, the blob folder every
    node shares holds no orphan and no temp file once the node is back, the chain verifies."""
    from zips import large
    upload_rounds(crashing_on_postgresql, large(str(tmp_path / "big.zip"), 24), "upload on PostgreSQL")


def test_sigkill_during_task_operations_on_postgresql(crashing_on_postgresql, tmp_path):
    test_sigkill_during_task_operations(crashing_on_postgresql, tmp_path)


def test_sigkill_during_amr_builds(crashing, tmp_path):
    upload_rounds(crashing, many_files(str(tmp_path / "many.zip")), ".amr build")


def signed_by(c, public_pem):
    """True when every package's SIGN.json verifies with `public_pem`."""
    pub = c.tmp / "pub.pem"
    pub.write_text(public_pem)
    import urllib.request
    for p in c.packages():
        with urllib.request.urlopen(c.server.url + f"/packages/20171228/{p['version']}.amr", timeout=30) as r:
            amr = zipfile.ZipFile(io.BytesIO(r.read()))
        (c.tmp / "t.tar").write_bytes(amr.read("20171228.tar"))
        (c.tmp / "sig").write_bytes(base64.b64decode(json.loads(amr.read("SIGN.json"))["20171228.tar"]))
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(c.tmp / "sig"), str(c.tmp / "t.tar")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return False
    return True


def public_key(c):
    import urllib.request
    with urllib.request.urlopen(c.server.url + "/api/v1/settings/public-key", timeout=10) as r:
        return r.read().decode()


def test_sigkill_during_key_replacement(crashing, tmp_path):
    c = crashing
    for _ in range(6):
        assert upload_file(c.server, c.token, many_files(str(tmp_path / "m.zip"), files=150), c.next_version())[0] == 201
    keys = [subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, text=True, check=True).stdout for _ in range(2)]
    start = time.time()
    assert c.call("PUT", "/api/v1/settings/signing-key", keys[0], "application/x-pem-file")[0] == 200
    duration = time.time() - start
    cut = 0
    for i in range(ROUNDS):
        key = keys[(i + 1) % 2]
        before = public_key(c)
        c.kill_during(lambda: c.call("PUT", "/api/v1/settings/signing-key", key, "application/x-pem-file"), duration)
        c.restart_and_check(f"re-sign round {i}")
        after = public_key(c)
        assert signed_by(c, after), f"re-sign round {i}: packages and the installed key disagree"
        if after == before:
            cut += 1
            assert upload_file(c.server, c.token, sample(str(tmp_path / "s.zip")), c.next_version())[0] == 201
            assert c.call("PUT", "/api/v1/settings/signing-key", key, "application/x-pem-file")[0] == 200, "the next try works"
    assert cut > 0, "no replacement was cut short"


def test_sigkill_during_task_operations(crashing, tmp_path):
    c = crashing
    version = c.next_version()
    assert upload_file(c.server, c.token, sample(str(tmp_path / "s.zip")), version)[0] == 201
    status, task = c.call("POST", f"/api/v1/apps/20171228/packages/{version}/tasks", {"type": "gray", "mode": "percentage", "percentage": 10})
    assert status == 201, task
    tid = task["id"]

    def churn():
        for _ in range(50):
            state = c.call("GET", f"/api/v1/tasks/{tid}")[1]["status"]
            c.call("POST", f"/api/v1/tasks/{tid}/" + ("pause" if state == "releasing" else "resume"))
            c.call("PATCH", f"/api/v1/tasks/{tid}", {"percentage": random.randint(1, 100)})
    for i in range(ROUNDS):
        c.kill_during(churn, 1.0)
        c.restart_and_check(f"task round {i}")
        t = c.call("GET", f"/api/v1/tasks/{tid}")[1]
        last = (c.sql(f"SELECT action FROM audit WHERE subject = '{int(tid)}' AND action IN ('task.pause','task.resume') "
                      "ORDER BY id DESC LIMIT 1") or [None])[0]
        if last:
            expected = "paused" if last[0] == "task.pause" else "releasing"
            assert t["status"] == expected, f"task round {i}: status {t['status']} but the log's last step is {last[0]}"


def test_sigkill_during_batch_import_submission(crashing, tmp_path):
    c = crashing
    for i in range(ROUNDS):
        ids = [str(30_000_000 + i * 10 + k) for k in range(4)]
        parts = b""
        boundary = "CrashBoundary"
        for app_id in ids:
            data = open(many_files(str(tmp_path / f"{app_id}.zip"), files=60, app_id=app_id), "rb").read()
            parts += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{app_id}.zip"\r\n'
                      f"Content-Type: application/zip\r\n\r\n").encode() + data + b"\r\n"
        parts += f"--{boundary}--\r\n".encode()
        status, imp = c.call("POST", "/api/v1/batch-imports", parts, f"multipart/form-data; boundary={boundary}")
        assert status == 201, imp
        c.kill_during(lambda: c.call("POST", f"/api/v1/batch-imports/{imp['id']}/submit"), 1.5)
        c.restart_and_check(f"import round {i}")
        db = sqlite3.connect(os.path.join(c.data, "courier.sqlite"))
        try:
            for app_id in ids:
                packages = db.execute("SELECT COUNT(*) FROM package WHERE appId = ?", (app_id,)).fetchone()[0]
                assert packages in (0, 1), f"import round {i}: {app_id} has {packages} packages"
        finally:
            db.close()


def test_sigkill_during_backup(crashing, tmp_path):
    c = crashing
    for _ in range(4):
        assert upload_file(c.server, c.token, many_files(str(tmp_path / "m.zip"), files=100), c.next_version())[0] == 201
    start = time.time()
    subprocess.run([BINARY, "backup", str(tmp_path / "timing"), "--data", c.data], check=True, capture_output=True)
    duration = time.time() - start
    for i in range(ROUNDS):
        target = tmp_path / f"backup-{i}"
        proc = subprocess.Popen([BINARY, "backup", str(target), "--data", c.data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        c.check(f"backup round {i}")   # the server's data is untouched
        if (target / "manifest.json").exists():      # finished: it must restore
            r = subprocess.run([BINARY, "restore", str(target), "--data", str(tmp_path / f"restored-{i}")], capture_output=True, text=True)
            assert r.returncode == 0, f"backup round {i}: {r.stderr}"
        else:                                        # unfinished: restore refuses it
            r = subprocess.run([BINARY, "restore", str(target), "--data", str(tmp_path / f"restored-{i}")], capture_output=True, text=True)
            assert r.returncode != 0


def test_backup_killed_between_renames_never_shows_a_manifest_without_its_files(crashing, tmp_path):
    """Deterministic twin of the test above (issue 15): the backup kills itself after each
    number of renames of its finished copy. Whatever the directory order, `manifest.json`
    is in place only when everything it lists is, so a backup with a manifest restores."""
    c = crashing
    assert upload_file(c.server, c.token, sample(str(tmp_path / "s.zip")), c.next_version())[0] == 201
    entries = 3   # courier.sqlite, blobs/, manifest.json
    for moved in range(1, entries + 1):
        target = tmp_path / f"cut-{moved}"
        env = dict(os.environ, COURIER_TEST_KILL_BACKUP_AFTER_MOVES=str(moved))
        r = subprocess.run([BINARY, "backup", str(target), "--data", c.data], env=env, capture_output=True)
        assert r.returncode == -signal.SIGKILL, f"the hook did not stop the backup after {moved} moves"
        in_place = sorted(n for n in os.listdir(target) if not n.startswith(".partial-"))
        assert len(in_place) == moved, in_place
        restore = subprocess.run([BINARY, "restore", str(target), "--data", str(tmp_path / f"restored-{moved}")],
                                 capture_output=True, text=True)
        if moved < entries:
            assert "manifest.json" not in in_place, f"the manifest arrived before {set(['courier.sqlite', 'blobs']) - set(in_place)}"
            assert restore.returncode != 0
        else:
            assert restore.returncode == 0, restore.stderr


def test_sigkill_during_patch_builds(tmp_path):
    """Issue 18: patches are built in the background after a release. Killed at a random moment
    of a build (a test hook pauses after the patch is written and after it is adopted), a restart
    leaves no half file, no orphaned blob and no row without its blob, and builds the patch."""
    c = Crashing(tmp_path, args=("--patch-bases", "1"), env={"COURIER_TEST_PATCH_PAUSE_MS": "300"})
    try:
        vendor = os.urandom(2 << 20)

        def package(version):
            path = str(tmp_path / f"{version}.zip")
            with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
                z.writestr("20171228/www/index.html", "<h1>shop</h1>")
                z.writestr("20171228/www/vendor.js", vendor)
                z.writestr("20171228/www/app.js", f"console.log('{version}');")
            return path

        def release(version):
            assert upload_file(c.server, c.token, package(version), version)[0] == 201
            status, body = c.call("POST", f"/api/v1/apps/20171228/packages/{version}/tasks", {"type": "official"})
            assert status == 201, body

        def patch_row(version, base):
            db = sqlite3.connect(os.path.join(c.data, "courier.sqlite"))
            try:
                return db.execute("SELECT blob FROM patch WHERE version = ? AND base = ?", (version, base)).fetchone()
            finally:
                db.close()

        previous = c.next_version()
        release(previous)
        cut = 0
        for i in range(ROUNDS):
            version = c.next_version()
            upload = package(version)
            assert upload_file(c.server, c.token, upload, version)[0] == 201
            c.kill_during(lambda: c.call("POST", f"/api/v1/apps/20171228/packages/{version}/tasks", {"type": "official"}), 0.9)
            half = [n for n in os.listdir(os.path.join(c.data, "tmp")) if n.endswith(".patch.amr")]
            cut += bool(half) or patch_row(version, previous) is None
            c.server.start()
            db = sqlite3.connect(os.path.join(c.data, "courier.sqlite"))
            released = db.execute("SELECT COUNT(*) FROM task WHERE version = ?", (version,)).fetchone()[0]
            db.close()
            if not released:
                release_status = c.call("POST", f"/api/v1/apps/20171228/packages/{version}/tasks", {"type": "official"})[0]
                assert release_status == 201, f"patch round {i}: the release was cut before it was made, and can be made now"
            # Built after the restart, once: its file is whole (checked below with every blob).
            deadline = time.time() + 20
            while time.time() < deadline and patch_row(version, previous) is None:
                time.sleep(0.1)
            assert patch_row(version, previous) is not None, f"patch round {i}: the patch was not built after the restart"
            c.check(f"patch round {i}, built")
            previous = version
        assert cut > 0, "no round was cut in the middle of a build"
    finally:
        c.stop()
