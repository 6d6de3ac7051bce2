"""Several nodes on PostgreSQL (issue 20, SPEC §9): two `courier serve` on one database and one
blob folder. A release made through node A is offered by node B within a second; B serves its
.amr from the shared folder; with A killed, B goes on answering; the audit chain written by
both verifies. `make test` starts the PostgreSQL cluster (tests/pg/cluster.sh) and gives its
admin URL in COURIER_TEST_POSTGRES."""
import json
import os
import subprocess
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BINARY, OUTPUT, PASSWORD, Server
from test_live import api
from test_push import push, update
from zips import sample

ADMIN_URL = os.environ.get("COURIER_TEST_POSTGRES")


def fresh_database():
    """A new database on the test cluster; its URL."""
    if not ADMIN_URL:
        if os.environ.get("CI"):
            pytest.fail("CI runs make test, which starts PostgreSQL (COURIER_TEST_POSTGRES)")
        pytest.skip("no PostgreSQL: run through make test")
    name = "courier_e2e_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", ADMIN_URL, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def courier(env, *args, stdin=None):
    return subprocess.run([BINARY, *args], input=stdin, capture_output=True, text=True, env=dict(os.environ, **env))


def test_two_nodes_on_one_database_share_releases_and_survive_one_another(tmp_path):
    url = fresh_database()
    env = {"COURIER_DATABASE": url, "COURIER_BLOB_DIR": str(tmp_path / "blobs")}
    a = Server(tempfile.mkdtemp(prefix="courier-node-a-"), env=env)
    b = Server(tempfile.mkdtemp(prefix="courier-node-b-"), env=env)
    added = courier(env, "user", "add", "admin", "--role", "admin", "--data", a.data, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stdout + added.stderr
    token = courier(env, "token", "create", "--user", "admin", "--scope", "read,upload,release,admin", "--data", b.data).stdout.strip()
    assert token.startswith("cour_"), "a token made through one node's command line opens the shared database"
    try:
        a.start()
        b.start()
        password = url.split(":")[2].split("@")[0]
        for node in (a, b):
            ready = json.load(urllib.request.urlopen(node.url + "/readyz", timeout=5))
            assert ready["ready"] and ready["store"].startswith("postgres://courier@"), ready
            assert password not in json.dumps(ready), "the password is never shown"

        assert api(a, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}))[0] == 200
        assert api(a, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
        assert update(b, "u1") == [], "nothing released yet"
        archive = tmp_path / "p.zip"
        sample(str(archive))
        pushed = push(a, token, "--app", "20171228", "--version", "1.0.0.1", "--android-min", "1.0", "--main-url", "/www/index.html",
                      "--release", "official", str(archive))
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        released = time.time()
        while update(b, "u1") != ["1.0.0.1"] and time.time() - released < 5:
            time.sleep(0.02)
        latency = time.time() - released
        assert update(b, "u1") == ["1.0.0.1"], "node B offers what was released through A"
        assert latency < 1.0, f"B offered it after {latency:.2f} s"
        os.makedirs(OUTPUT, exist_ok=True)
        with open(os.path.join(OUTPUT, "nodes-propagation.txt"), "w") as f:
            f.write(f"release through A offered by B after {latency * 1000:.0f} ms\n")

        # B serves the package from the blob folder both share.
        body = json.dumps({"platform": "android", "clientVersion": "10.2.3", "deviceId": "d-u1", "userId": "u1",
                           "apps": [{"id": "20171228", "version": "0"}]}).encode()
        request = urllib.request.Request(b.url + "/client/v1/update", data=body, headers={"Content-Type": "application/json"})
        entry = json.load(urllib.request.urlopen(request, timeout=10))["data"][0]
        amr_path = entry["package_url"].split("://", 1)[1].split("/", 1)[1]
        with urllib.request.urlopen(f"{b.url}/{amr_path}", timeout=10) as r:
            assert r.status == 200 and len(r.read()) > 0

        # A time window of 20, asked by 120 devices split over both nodes at once: exactly 20.
        pushed = push(b, token, "--app", "20171228", "--version", "1.0.0.2", str(archive))
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        status, task = api(b, token, "POST", "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                           json.dumps({"type": "gray", "mode": "timeWindow", "endTime": end, "userCount": 20}))
        assert status == 201, task
        time.sleep(1)   # both nodes' snapshots hold the task
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda n: update(a if n % 2 else b, f"w{n}"), range(120)))
        admitted = [n for n, versions in enumerate(answers) if versions == ["1.0.0.2"]]
        assert len(admitted) == 20, answers
        assert all(versions == ["1.0.0.1"] for versions in answers if versions != ["1.0.0.2"]), "the others keep the official release"
        # Patches (1.0.0.2 from 1.0.0.1) are built once, by the node holding the `patches` lease.
        def built(node):   # patch builds started (a loser's build would count, though never recorded)
            text = urllib.request.urlopen(node.url + "/metrics", timeout=5).read().decode()
            return sum(int(float(line.split()[-1])) for line in text.splitlines()
                       if line.startswith("courier_patch_build_duration_seconds_count"))
        deadline = time.time() + 15
        while built(a) + built(b) == 0 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        assert sorted([built(a), built(b)]) == [0, 1], (built(a), built(b))
        for node in (a, b):   # each console counts every node's admissions
            assert api(node, token, "GET", f"/api/v1/tasks/{task['id']}")[1]["admitted"] == 20
        again = admitted[0]
        assert update(b if again % 2 else a, f"w{again}") == ["1.0.0.2"], "an admitted device is admitted on the other node too"

        # A killed (SIGKILL) while four clients hit B: not one of B's answers fails.
        outcomes = {"ok": 0, "failed": []}
        stop_at = [time.time() + 60]

        def hammer(n):
            while time.time() < stop_at[0]:
                try:
                    assert update(b, f"load{n}") == ["1.0.0.1"]
                    outcomes["ok"] += 1
                except Exception as e:   # noqa: BLE001 - every failure is counted
                    outcomes["failed"].append(repr(e))
        with ThreadPoolExecutor(4) as pool:
            for n in range(4):
                pool.submit(hammer, n)
            time.sleep(1)
            a.kill()
            killed_at = outcomes["ok"]
            time.sleep(2)
            stop_at[0] = 0
        assert outcomes["failed"] == [], outcomes["failed"][:3]
        assert killed_at > 20 and outcomes["ok"] > killed_at + 20, outcomes
        with open(os.path.join(OUTPUT, "nodes-propagation.txt"), "a") as f:
            f.write(f"node A killed under load at B: {outcomes['ok']} answers from B, 0 failed\n")
        # B's console sees what A wrote.
        status, app = api(b, token, "GET", "/api/v1/apps/20171228")
        assert status == 200 and [p["version"] for p in app["packages"]] == ["1.0.0.2", "1.0.0.1"], app

        # A restarts on the same database.
        a.start()
        assert update(a, "u2") == ["1.0.0.1"]
        verified = courier(env, "audit", "verify", "--data", a.data)
        assert verified.returncode == 0 and "holds" in verified.stdout, verified.stdout + verified.stderr

        # The sign-in throttle is shared: five wrong passwords spread over A and B lock the
        # name on both, and the right one waits too.
        statuses = [sign_in(node, "admin", "wrong") for node in (a, b, a, b, a)]
        assert statuses == [401] * 5, statuses
        assert sign_in(b, "admin", "wrong") == 429 and sign_in(a, "admin", PASSWORD) == 429
    finally:
        a.stop()
        b.stop()


def sign_in(server, name, password):
    """Signs in through the form (its CSRF cookie and token), answering the status."""
    import http.cookiejar
    import re
    import urllib.error
    import urllib.parse
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    page = opener.open(server.url + "/login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"name": name, "password": password, "csrf": csrf, "next": "/apps"}).encode()
    try:
        return opener.open(server.url + "/login", data=form, timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code


def answers(server, users):
    """Each user's whole update answer, the node's own address taken out."""
    out = []
    for user in users:
        body = json.dumps({"platform": "android", "clientVersion": "10.2.3", "deviceId": "d-" + user, "userId": user,
                           "apps": [{"id": "20171228", "version": "0"}]}).encode()
        request = urllib.request.Request(server.url + "/client/v1/update", data=body, headers={"Content-Type": "application/json"})
        out.append(json.dumps(json.load(urllib.request.urlopen(request, timeout=10))["data"], sort_keys=True).replace(server.url, "NODE"))
    return out


def test_a_backup_moves_between_postgresql_and_sqlite_serving_the_same_answers(tmp_path):
    """The migration path both ways (issue 20): a PostgreSQL store's backup restores into a
    SQLite data folder, that one's backup into a new PostgreSQL database; each serves the same
    update answers, and each audit chain verifies."""
    url = fresh_database()
    env = {"COURIER_DATABASE": url, "COURIER_BLOB_DIR": str(tmp_path / "blobs")}
    node = Server(tempfile.mkdtemp(prefix="courier-node-"), env=env)
    assert courier(env, "user", "add", "admin", "--role", "admin", "--data", node.data, stdin=PASSWORD + "\n").returncode == 0
    token = courier(env, "token", "create", "--user", "admin", "--scope", "read,upload,release,admin", "--data", node.data).stdout.strip()
    users = [f"m{n}" for n in range(24)]
    servers = [node]
    try:
        node.start()
        assert api(node, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}))[0] == 200
        assert api(node, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
        archive = tmp_path / "p.zip"
        sample(str(archive))
        for version, release in (("1.0.0.1", ["--release", "official"]), ("1.0.0.2", [])):
            pushed = push(node, token, "--app", "20171228", "--version", version, "--android-min", "1.0", "--main-url", "/www/index.html",
                          *release, str(archive))
            assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        status, task = api(node, token, "POST", "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                           json.dumps({"type": "gray", "mode": "percentage", "percentage": 50}))
        assert status == 201, task
        expected = answers(node, users)
        assert {json.loads(a)[0]["version"] for a in expected} == {"1.0.0.1", "1.0.0.2"}, "the devices get both versions"

        # PostgreSQL -> SQLite.
        made = courier(env, "backup", str(tmp_path / "from-pg"), "--data", node.data)
        assert made.returncode == 0, made.stdout + made.stderr
        restored = courier({}, "restore", str(tmp_path / "from-pg"), "--data", str(tmp_path / "sqlite"))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        local = Server(str(tmp_path / "sqlite"))
        servers.append(local)
        local.start()
        assert answers(local, users) == expected, "the SQLite node answers as the PostgreSQL one did"
        verified = courier({}, "audit", "verify", "--data", local.data)
        assert verified.returncode == 0 and "holds" in verified.stdout, verified.stdout + verified.stderr

        # SQLite -> a new PostgreSQL database (an empty one: a database in use is refused).
        made = courier({}, "backup", str(tmp_path / "from-sqlite"), "--data", local.data)
        assert made.returncode == 0, made.stdout + made.stderr
        refused = courier(env, "restore", str(tmp_path / "from-sqlite"), "--data", node.data)
        assert refused.returncode != 0 and "already holds" in refused.stderr, refused.stdout + refused.stderr
        second = {"COURIER_DATABASE": fresh_database(), "COURIER_BLOB_DIR": str(tmp_path / "blobs2")}
        restored = courier(second, "restore", str(tmp_path / "from-sqlite"), "--data", str(tmp_path / "unused"))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "postgres://" in restored.stdout and url.split(":")[2].split("@")[0] not in restored.stdout, restored.stdout
        again = Server(tempfile.mkdtemp(prefix="courier-node-"), env=second)
        servers.append(again)
        again.start()
        assert answers(again, users) == expected, "the new PostgreSQL node answers the same"
        verified = courier(second, "audit", "verify", "--data", again.data)
        assert verified.returncode == 0 and "holds" in verified.stdout, verified.stdout + verified.stderr
    finally:
        for s in servers:
            s.stop()
