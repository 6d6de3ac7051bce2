"""Operations (issue 10): a clean stop on SIGTERM / SIGINT that lets running uploads finish
within the grace period, and a full disk answered with 507 and nothing half-written."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BINARY, Server
from test_live import api, files_in, multipart_head, package_rows, prepare, upload_file
from zips import large, sample


def slow_upload(server, token, path, version, pause, result):
    """Sends the zip in 1 MB pieces with a pause between them; puts (status, body) in result."""
    boundary = "CourierSlowBoundary"
    head, tail = multipart_head(boundary, version), f"\r\n--{boundary}--\r\n".encode()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        conn.putrequest("POST", "/api/v1/apps/20171228/packages")
        conn.putheader("Authorization", "Bearer " + token)
        conn.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
        conn.putheader("Content-Length", str(len(head) + os.path.getsize(path) + len(tail)))
        conn.endheaders()
        conn.send(head)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                conn.send(chunk)
                result["sent"] = result.get("sent", 0) + len(chunk)
                time.sleep(pause)
        conn.send(tail)
        r = conn.getresponse()
        result["status"] = r.status
        result["body"] = r.read()
    except OSError as e:
        result["error"] = repr(e)


def start_slow_upload(server, token, path, pause, until_bytes):
    """Starts slow_upload in a thread and returns once `until_bytes` are sent: (thread, result)."""
    result = {}
    t = threading.Thread(target=slow_upload, args=(server, token, path, "1.0.0.1", pause, result))
    t.start()
    while result.get("sent", 0) < until_bytes:
        time.sleep(0.05)
    return t, result


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_a_running_upload_finish(make_server, tmp_path, sig):
    server = make_server()
    token = prepare(server)
    path = large(str(tmp_path / "big.zip"), 16)
    t, result = start_slow_upload(server, token, path, 0.15, 3 << 20)
    server.proc.send_signal(sig)
    deadline = time.time() + 5
    while accepts(server.port) and time.time() < deadline:
        time.sleep(0.1)
    assert not accepts(server.port), "no new connection is accepted once stopping"
    t.join(60)
    assert result.get("status") == 201, result
    assert server.proc.wait(30) == 0, "a clean exit"
    log = open(os.path.join(server.data, "server.log")).read()
    assert "Courier stopped." in log
    assert package_rows(server) == 1


def test_an_upload_beyond_the_grace_period_is_cut_and_leaves_nothing(make_server, tmp_path):
    server = make_server("--grace-period", "1")
    token = prepare(server)
    path = large(str(tmp_path / "big.zip"), 16)
    t, result = start_slow_upload(server, token, path, 0.5, 2 << 20)
    started = time.time()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(20)
    assert time.time() - started < 10, "stopped after the grace period, not when the upload would have ended"
    t.join(60)
    assert "status" not in result or result["status"] != 201
    server.start()
    assert files_in(server, "tmp") == [] and files_in(server, "blobs") == [] and package_rows(server) == 0


def send_upload(server, token, path, version):
    """Like upload_file, but a server that answers early (and closes) still gives its answer."""
    try:
        return upload_file(server, token, path, version)
    except (BrokenPipeError, ConnectionResetError):
        return None, None


def test_a_full_disk_answers_507_and_leaves_nothing(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    data = str(mount / "data")
    server = Server(data)
    try:
        subprocess.run([os.environ.get("COURIER_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", ".build", "debug", "courier"),
                        "user", "add", "admin", "--role", "admin", "--data", data], input="e2e-password-1\n", text=True, check=True)
        server.start()
        token = prepare(server)
        assert upload_file(server, token, sample(str(tmp_path / "s.zip")), "1.0.0.1")[0] == 201
        blobs_before = files_in(server, "blobs")

        big = large(str(tmp_path / "big.zip"), 24)   # twice what the disk holds
        status, body = send_upload(server, token, big, "1.0.0.2")
        if status is not None:
            assert status == 507, (status, body)
            assert "disk is full" in body["error"]["message"], body
        assert files_in(server, "tmp") == [], "nothing half-written stays"
        assert files_in(server, "blobs") == blobs_before and package_rows(server) == 1
        assert api(server, token, "GET", "/api/v1/apps/20171228")[0] == 200, "the server keeps answering"

        # Fill what is left: even a small upload is refused with 507; free the space and it works.
        filler = mount / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=64"], capture_output=True)
        status, body = send_upload(server, token, sample(str(tmp_path / "s2.zip")), "1.0.0.2")
        assert status == 507, (status, body)
        assert files_in(server, "tmp") == []
        filler.unlink()
        status, body = upload_file(server, token, sample(str(tmp_path / "s3.zip")), "1.0.0.2")
        assert status == 201, body
        assert package_rows(server) == 2
    finally:
        server.stop()
        subprocess.run(["umount", str(mount)])


def test_a_rewritten_audit_chain_is_caught_by_its_recorded_head(server, tmp_path):
    """Issue 15, 3.8: whoever can write the database can change a row and recompute every later
    hash, so `audit verify` alone passes; the head printed by `courier audit head` and kept
    elsewhere catches it."""
    import hashlib
    import sqlite3
    prepare(server)
    head = server.courier("audit", "head").stdout.strip()
    row, digest = head.split(":")
    assert int(row) >= 3 and len(digest) == 64, head
    assert "still has the recorded hash" in server.courier("audit", "verify", "--head", head).stdout
    db = sqlite3.connect(os.path.join(server.data, "courier.sqlite"))
    try:
        rows = db.execute("SELECT id, at, user, action, subject, detail FROM audit ORDER BY id").fetchall()
        previous = ""
        for (rid, at, user, action, subject, detail) in rows:
            if rid == 2:
                user = "mallory"
                db.execute("UPDATE audit SET user = ? WHERE id = ?", (user, rid))
            h = hashlib.sha256("\x1f".join([previous, at, user, action, subject, detail]).encode()).hexdigest()
            db.execute("UPDATE audit SET hash = ? WHERE id = ?", (h, rid))
            previous = h
        db.commit()
    finally:
        db.close()
    plain = subprocess.run([BINARY, "audit", "verify", "--data", server.data], capture_output=True, text=True)
    assert plain.returncode == 0, "the rewritten chain holds on its own: that is the weakness"
    checked = subprocess.run([BINARY, "audit", "verify", "--head", head, "--data", server.data], capture_output=True, text=True)
    assert checked.returncode == 1 and "was rewritten" in checked.stdout, checked.stdout


def test_an_operator_manages_users_from_the_command_line(server):
    """Issue 15, 3.4: disable, enable, role and password without the console; names are a safe set."""
    bad = subprocess.run([BINARY, "user", "add", "dan o", "--role", "developer", "--data", server.data],
                         input="e2e-password-1\n", capture_output=True, text=True)
    assert bad.returncode != 0 and "letters" in bad.stderr, bad.stderr
    server.courier("user", "add", "dan", "--role", "developer", stdin="e2e-password-1\n")
    twin = subprocess.run([BINARY, "user", "add", "Dan", "--role", "developer", "--data", server.data],
                          input="e2e-password-1\n", capture_output=True, text=True)
    assert twin.returncode != 0 and "differ only in case" in twin.stderr, twin.stderr
    token = server.courier("token", "create", "--user", "dan", "--scope", "read").stdout.strip()
    assert api(server, token, "GET", "/api/v1/apps")[0] == 200
    assert "Disabled dan" in server.courier("user", "disable", "dan").stdout
    assert api(server, token, "GET", "/api/v1/apps")[0] == 401
    assert "Enabled dan" in server.courier("user", "enable", "dan").stdout
    assert "dan is now reviewer" in server.courier("user", "role", "dan", "reviewer").stdout
    assert api(server, token, "GET", "/api/v1/apps")[0] == 200
    out = server.courier("user", "password", "dan", "--revoke-tokens", stdin="another-password\n").stdout
    assert "API tokens revoked" in out, out
    assert api(server, token, "GET", "/api/v1/apps")[0] == 401
    last = subprocess.run([BINARY, "user", "disable", "admin", "--data", server.data], capture_output=True, text=True)
    assert last.returncode != 0 and "last active administrator" in last.stderr, last.stderr


def test_trusted_proxies_come_from_the_flag_or_the_environment(make_server):
    """Issue 15, 3.5: `--trusted-proxy` and COURIER_TRUSTED_PROXY reach the server; X-Forwarded-For
    from anyone else is not believed (here: /metrics refuses a request forwarded by an undeclared proxy)."""
    import urllib.error
    import urllib.request

    def metrics(server, forwarded):
        request = urllib.request.Request(server.url + "/metrics", headers={"X-Forwarded-For": forwarded})
        try:
            return urllib.request.urlopen(request, timeout=5).status
        except urllib.error.HTTPError as e:
            return e.code

    undeclared = make_server()
    assert metrics(undeclared, "127.0.0.1") == 403
    by_env = make_server(env={"COURIER_TRUSTED_PROXY": "10.0.0.0/8, 127.0.0.1"})
    assert metrics(by_env, "127.0.0.1") == 200, "loopback behind a trusted loopback proxy"
    assert metrics(by_env, "203.0.113.7") == 403, "a person forwarded from outside"
    by_flag = make_server("--trusted-proxy", "10.0.0.0/8")
    assert metrics(by_flag, "127.0.0.1") == 403, "the flag names another proxy: the header is not believed"
    bad = subprocess.run([BINARY, "serve", "--data", by_flag.data, "--port", "1", "--trusted-proxy", "10.0.0.300/8"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "--trusted-proxy takes addresses or CIDR ranges" in bad.stdout + bad.stderr
