"""Several nodes on PostgreSQL (issue 20): how fast a change made through node A reaches node B's
update answers (p50, p99 over ROUNDS pauses and resumes), and how many time-window admissions per
second two nodes make together (DEVICES new devices over both, THREADS at once).

    python3 bench/nodes.py ADMIN_URL [BINARY]

ADMIN_URL: a PostgreSQL URL that may create databases (tests/pg/cluster.sh start prints one);
BINARY defaults to .build/release/courier. Prints the figures; exits 1 on a failed request."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from conftest import PASSWORD, Server  # noqa: E402
import conftest  # noqa: E402
from test_live import api  # noqa: E402
from test_push import push  # noqa: E402
from zips import sample  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "100"))
DEVICES = int(os.environ.get("DEVICES", "4000"))
THREADS = int(os.environ.get("THREADS", "32"))


def update(node, user):
    body = json.dumps({"platform": "android", "clientVersion": "10.2.3", "deviceId": "d-" + user, "userId": user,
                       "apps": [{"id": "20171228", "version": "0"}]}).encode()
    req = urllib.request.Request(node.url + "/client/v1/update", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return [e["version"] for e in json.load(r)["data"]]


def main():
    admin = sys.argv[1]
    conftest.BINARY = sys.argv[2] if len(sys.argv) > 2 else os.path.join(conftest.ROOT, ".build", "release", "courier")
    import test_push
    test_push.BINARY = conftest.BINARY
    name = "courier_bench_" + uuid.uuid4().hex[:10]
    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    url = admin.rsplit("/", 1)[0] + "/" + name
    work = tempfile.mkdtemp(prefix="courier-nodes-bench-")
    env = {"COURIER_DATABASE": url, "COURIER_BLOB_DIR": work + "/blobs"}
    run = lambda *a, stdin=None: subprocess.run([conftest.BINARY, *a], input=stdin, capture_output=True, text=True,  # noqa: E731
                                                env=dict(os.environ, **env), check=True)
    a, b = Server(tempfile.mkdtemp(dir=work), env=env), Server(tempfile.mkdtemp(dir=work), env=env)
    run("user", "add", "admin", "--role", "admin", "--data", a.data, stdin=PASSWORD + "\n")
    token = run("token", "create", "--user", "admin", "--scope", "read,upload,release,admin", "--data", a.data).stdout.strip()
    try:
        a.start()
        b.start()
        assert api(a, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}))[0] == 200
        assert api(a, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
        archive = os.path.join(work, "p.zip")
        sample(archive)
        pushed = push(a, token, "--app", "20171228", "--version", "1.0.0.1", "--android-min", "1.0", "--release", "official",
                      "--json", archive)
        assert pushed.returncode == 0, pushed.stderr
        task = json.loads(pushed.stdout)["task"]["id"]
        # Propagation: pause and resume through A, each seen in B's answers.
        delays = []
        for n in range(ROUNDS):
            op, want = ("pause", []) if n % 2 == 0 else ("resume", ["1.0.0.1"])
            assert api(a, token, "POST", f"/api/v1/tasks/{task}/{op}")[0] == 200
            start = time.perf_counter()
            while update(b, "u") != want:
                if time.perf_counter() - start > 5:
                    raise SystemExit(f"B did not see the {op} within 5 s")
            delays.append((time.perf_counter() - start) * 1000)
        delays.sort()
        p50, p99 = statistics.median(delays), delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        # Admissions: a window wide enough for every device, asked of both nodes at once.
        assert push(a, token, "--app", "20171228", "--version", "1.0.0.2", archive).returncode == 0
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        status, _ = api(a, token, "POST", "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                        json.dumps({"type": "gray", "mode": "timeWindow", "endTime": end, "userCount": DEVICES}))
        assert status == 201
        time.sleep(1)
        start = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(lambda n: update(a if n % 2 else b, f"w{n}"), range(DEVICES)))
        seconds = time.perf_counter() - start
        admitted = sum(1 for v in answers if v == ["1.0.0.2"])
        assert admitted == DEVICES, f"{admitted} of {DEVICES} admitted"
        print(f"propagation A -> B over {ROUNDS} changes: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(f"admissions: {DEVICES} new devices over two nodes in {seconds:.2f} s: {DEVICES / seconds:.0f} per second ({THREADS} at once)")
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    main()
